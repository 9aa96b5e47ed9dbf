"""Command-line options shared by ``backup create`` and ``plan create``."""

from __future__ import annotations

from typing import Annotated

import typer

from schemas.specs import BackupMode, ClusterResources

Vault = Annotated[str, typer.Option(help="Vault to store the backup in")]
IncludeNamespaces = Annotated[str | None, typer.Option(help="Comma-separated namespaces to back up")]
ExcludeNamespaces = Annotated[str | None, typer.Option(help="Comma-separated namespaces to leave out")]
Mode = Annotated[BackupMode, typer.Option(help="application or data-protection")]
Selector = Annotated[str | None, typer.Option(help="Label selector for namespaced objects")]
IncludeResources = Annotated[str | None, typer.Option(help="Only these types, e.g. deploy,cm")]
ExcludeResources = Annotated[str | None, typer.Option(help="Leave out these types, e.g. pvc,pv")]
ClusterScope = Annotated[ClusterResources, typer.Option("--cluster-resources", help="related, all or none")]
VolumeData = Annotated[bool, typer.Option(help="Back up volume data (snapshots, files)")]
Ttl = Annotated[str, typer.Option(help="Retention of each backup, e.g. 720h or 30d")]


def split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def template_fields(
    vault: str,
    include_namespaces: str | None,
    exclude_namespaces: str | None,
    mode: BackupMode,
    selector: str | None,
    include_resources: str | None,
    exclude_resources: str | None,
    cluster_resources: ClusterResources,
    volume_data: bool,
    ttl: str,
) -> dict[str, object]:
    return {
        "vault": vault,
        "include_namespaces": split(include_namespaces),
        "exclude_namespaces": split(exclude_namespaces),
        "mode": mode,
        "label_selector": selector,
        "include_resources": split(include_resources),
        "exclude_resources": split(exclude_resources),
        "cluster_resources": cluster_resources,
        "volume_data": volume_data,
        "ttl": ttl,
    }
