"""``backupctl convert create|list|describe|cancel|retry|skip|records``: storage-class conversion."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from backupctl import jobctl
from backupctl import options as opt
from backupctl.asyncrun import with_client
from backupctl.console import console
from backupctl.job_commands import KeepFollowing, add_operator_commands, start_job_command
from backupctl.restore_cmd import parse_mapping
from backupctl.vault_cmd import named_store
from schemas.convert import ConvertedVolume
from schemas.specs import ConvertSpec
from vault.conversions import list_conversions
from workflows.convert import ConvertWorkflow

convert_app = typer.Typer(
    help="Convert a backup's volumes to snapshots of another storage class (e.g. NAS → disk), so a "
    "restore mapping that class restores them from snapshots.",
    no_args_is_help=True,
)


@convert_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Conversion name (a Kubernetes name, unique)")],
    backup: Annotated[str, typer.Option(help="Backup whose volumes to convert")],
    vault: Annotated[str, typer.Option(help="Vault holding the backup")],
    storage_class_mapping: Annotated[
        str, typer.Option(help="source:target classes, comma-separated, e.g. alibabacloud-cnfs-nas:disk")
    ],
    convert_to_access_modes: Annotated[
        str | None, typer.Option(help="Access modes of the converted volumes, e.g. ReadWriteOnce")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Follow progress until the conversion finishes")] = False,
    keep_following: KeepFollowing = False,
) -> None:
    """Start a conversion."""
    spec = ConvertSpec(
        name=name,
        backup=backup,
        vault=vault,
        storage_class_mapping=parse_mapping("--storage-class-mapping", storage_class_mapping),
        convert_to_access_modes=opt.split(convert_to_access_modes),
    )
    start_job_command(
        "convert",
        name,
        ConvertWorkflow.run,
        spec,
        vault=vault,
        summary=f"convert {name}: backup {backup} from vault {vault}",
        label="conversion",
        wait=wait,
        keep_following=keep_following,
    )


@convert_app.command("list")
def list_jobs(phase: Annotated[str | None, typer.Option(help="Only jobs in this phase")] = None) -> None:
    """Conversion jobs of this cluster, newest first."""
    jobctl.print_job_list("convert", phase)


@convert_app.command("describe")
def describe(name: Annotated[str, typer.Argument()]) -> None:
    """Steps (one per volume), errors with causes and fixes, volumes not converted and why."""
    status = with_client(lambda client: jobctl.job_status(client, "convert", name))
    console.print(jobctl.render(status))


add_operator_commands(
    convert_app,
    "convert",
    label="conversion",
    cancel_help="Stop the conversion; its temporary PVCs and pods and the snapshots so far are removed.",
    skip_help="Give up on the failed volume: it counts as failed, the conversion ends PartiallyFailed.",
)


@convert_app.command("records")
def records(
    vault: Annotated[str, typer.Option(help="Vault to list")],
    backup: Annotated[str | None, typer.Option(help="Only conversions of this backup")] = None,
) -> None:
    """Conversions recorded in a vault, with their converted snapshots."""
    store = named_store(vault)
    found = list_conversions(store, backup=backup)
    table = Table("conversion", "backup", "cluster", "state", "volume", "class", "snapshot")
    for record in found:
        rows: list[ConvertedVolume | None] = list(record.volumes) or [None]
        for volume in rows:
            table.add_row(
                record.name,
                record.backup,
                record.cluster_id,
                record.state.value,
                volume.source if volume else "-",
                f"{volume.source_class} → {volume.target_class}" if volume else "-",
                volume.handle if volume else "-",
            )
    console.print(table)
    console.print(f"{len(found)} conversion(s) in vault {vault}")
