"""``backupctl vault create|list|describe|check|delete``: backup vaults of this cluster.

The registry is a JSON file per vault under ``<state dir>/vaults`` (``--state-dir`` or
``BACKUPCENTER_STATE_DIR``), or ConfigMaps in the product namespace when the setting
``vault_registry`` is ``kubernetes`` (as deployed).  OSS credentials come from the
``ALIBABA_CLOUD_*`` environment, or from the Secret named by ``--credentials-secret`` (read with
the current kubeconfig).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from activities.context import WorkerContext
from backupctl.console import BadInput, console, err_console, settings_provider, state_dir
from schemas.errors import BackupCenterError
from schemas.vault import SecretRef, VaultBackup, VaultEntry, VaultPhase, VaultSpec, VaultStatus
from vault.catalog import list_backups
from vault.lifecycle import VaultManager
from vault.open import from_validation_error
from vault.store import ObjectStore

vault_app = typer.Typer(
    help="Backup vaults: where backups live (OSS buckets or local directories).", no_args_is_help=True
)

StateDir = Annotated[
    Path | None, typer.Option("--state-dir", help="Default: $BACKUPCENTER_STATE_DIR or .dev")
]
ClusterId = Annotated[str | None, typer.Option("--cluster-id", help="Default: the settings' cluster_id")]


def manager(state: Path | None = None, cluster_id: str | None = None) -> VaultManager:
    """The CLI's VaultManager (also used by tests and the demo): the same registry and credential
    resolution as the workers, per the settings."""
    ctx = WorkerContext(
        settings_provider(),
        state_dir=state if state is not None else state_dir(),
        kubeconfig=os.environ.get("KUBECONFIG"),
    )
    found: VaultManager = ctx.vaults()
    return replace(found, cluster_id=cluster_id) if cluster_id else found


def named_store(vault: str) -> ObjectStore:
    """The object store of a registered vault; an unknown name is bad input (exit code 2)."""
    try:
        store: ObjectStore = manager().store(vault)
    except BackupCenterError as err:
        if err.code == "NotFound":
            raise BadInput(err.short()) from None
        raise
    return store


# The product's default RAM policy (deploy/policies/oss-vault.json) covers buckets with this prefix.
POLICY_BUCKET_PREFIX = "cnfs-oss-"


def _policy_hint(spec: VaultSpec, err: BackupCenterError) -> str | None:
    """Access denied on a bucket the default policy does not cover: say so, and the two fixes."""
    if err.code != "VaultUnavailable" or "no permission" not in err.params.get("cause", ""):
        return None
    bucket = spec.url.removeprefix("oss://").split("/", 1)[0]
    if not spec.url.startswith("oss://") or bucket.startswith(POLICY_BUCKET_PREFIX):
        return None
    return (
        f"hint: the product's default RAM policy (deploy/policies/oss-vault.json) grants access to buckets "
        f"named {POLICY_BUCKET_PREFIX}*; bucket {bucket} is not one of them: use a bucket named "
        f"{POLICY_BUCKET_PREFIX}<something>, or add {bucket} to the policy of the product's AccessKey."
    )


def _bad_input(err: BackupCenterError) -> BackupCenterError | BadInput:
    # Invalid input is exit code 2 (nothing was started); other product errors stay exit code 1.
    return BadInput(err.short()) if err.code == "InvalidSpec" else err


def _secret_ref(text: str | None) -> SecretRef | None:
    if not text:
        return None
    namespace, _, name = text.rpartition("/")
    try:
        return SecretRef(name=name, namespace=namespace or None)
    except Exception as err:
        raise BadInput(f"--credentials-secret: {text!r} is not [namespace/]name ({err})") from None


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _phase(status: VaultStatus) -> str:
    colour = {VaultPhase.available: "green", VaultPhase.unavailable: "red"}.get(status.phase, "yellow")
    return f"[{colour}]{status.phase.value}[/{colour}]"


@vault_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Vault name (a Kubernetes name); never reusable once deleted")],
    url: Annotated[str, typer.Option(help="oss://bucket/prefix or file:///absolute/path")],
    region: Annotated[str | None, typer.Option(help="OSS region id, e.g. cn-hangzhou")] = None,
    network: Annotated[str, typer.Option(help="internal (in-region VPC endpoint) or public")] = "internal",
    endpoint: Annotated[str | None, typer.Option(help="Explicit OSS endpoint (not region+network)")] = None,
    encryption: Annotated[str, typer.Option(help="none, oss-managed or kms")] = "none",
    kms_key_id: Annotated[str | None, typer.Option(help="KMS key id (with --encryption kms)")] = None,
    credentials_secret: Annotated[str | None, typer.Option(help="[namespace/]name of a Secret")] = None,
    description: Annotated[str, typer.Option(help="Free text")] = "",
    state: StateDir = None,
    cluster_id: ClusterId = None,
) -> None:
    """Create a vault (immutable afterwards); checks the bucket before registering it."""
    fields: dict[str, Any] = {
        "name": name,
        "url": url,
        "region": region,
        "network": network,
        "endpoint": endpoint,
        "encryption": encryption,
        "kms_key_id": kms_key_id,
        "credentials": _secret_ref(credentials_secret),
        "description": description,
    }
    try:
        spec = VaultSpec(**fields)
    except ValidationError as err:
        raise BadInput(from_validation_error(err).short()) from None
    try:
        entry = manager(state, cluster_id).create(spec)
    except BackupCenterError as err:
        hint = _policy_hint(spec, err)
        if hint:
            err_console.print(hint, markup=False)
        raise _bad_input(err) from None
    console.print(f"vault {entry.name} {_phase(entry.status)}: {entry.spec.url}")
    if entry.marker is not None and entry.marker.vault_name != entry.name:
        console.print(
            f"the location was first used by vault {entry.marker.vault_name} "
            f"(cluster {entry.marker.created_by_cluster}); its backups are offered here too"
        )


@vault_app.command("list")
def list_vaults(
    all_: Annotated[bool, typer.Option("--all", help="Include deleted vaults (tombstones)")] = False,
    state: StateDir = None,
    cluster_id: ClusterId = None,
) -> None:
    """List vaults with their last known status (run `check` to refresh)."""
    entries = manager(state, cluster_id).list(include_deleted=all_)
    table = Table(
        "name", "url", "region", "network", "phase", "last check (UTC)", "last success (UTC)", "cause"
    )
    for e in entries:
        phase = "[dim]Deleted[/dim]" if e.deleted else _phase(e.status)
        table.add_row(
            e.name,
            e.spec.url,
            e.spec.region or "-",
            e.spec.network.value,
            phase,
            _when(e.status.last_check_time),
            _when(e.status.last_success_time),
            e.status.cause or "",
        )
    console.print(table)
    console.print(f"{len(entries)} vault(s)")


def _describe_entry(entry: VaultEntry) -> None:
    spec = entry.spec
    status = entry.status
    rows = [
        ("name", spec.name),
        ("url", spec.url),
        ("region", spec.region or "-"),
        ("network", spec.network.value),
        ("endpoint", spec.endpoint or "(from region and network)"),
        ("encryption", spec.encryption.value),
        ("kms key id", spec.kms_key_id or "-"),
        ("credentials", str(spec.credentials or "environment")),
        ("vault id", entry.vault_id),
        ("created", f"{_when(entry.created_at)} by cluster {entry.created_by_cluster}"),
        ("phase", _phase(status)),
        ("storage class", status.storage_class or "-"),
        ("last check", _when(status.last_check_time)),
        ("last success", _when(status.last_success_time)),
    ]
    marker = entry.marker
    if marker is not None and marker.vault_name != spec.name:
        rows.append(("first created as", f"{marker.vault_name} by cluster {marker.created_by_cluster}"))
    for label, value in rows:
        console.print(f"[bold]{label + ':':<16}[/bold] {value}")
    error = entry.status.error
    if entry.status.phase == VaultPhase.unavailable and error is not None:
        console.print(f"[bold]{'error:':<16}[/bold] {error.kind}: {error.message}", markup=True)
        for cause in error.causes:
            console.print(f"  cause: {cause}")
        for fix in error.fixes:
            console.print(f"  fix:   {fix}")


def _backups_table(backups: list[VaultBackup]) -> Table:
    table = Table("backup", "state", "source cluster", "completed (UTC)", "resources", "volumes", "size")
    for b in backups:
        r = b.record
        table.add_row(
            b.name,
            b.state.value,
            b.source_cluster or "-",
            _when(r.completed_at if r else None),
            str(r.resource_count) if r else "-",
            str(r.volume_count) if r else "-",
            f"{r.size_bytes / 2**20:.1f} MiB" if r else "-",
        )
    return table


@vault_app.command("describe")
def describe(
    name: Annotated[str, typer.Argument(help="Vault name")],
    backups: Annotated[bool, typer.Option(help="List the backups this cluster can restore from it")] = True,
    all_backups: Annotated[bool, typer.Option(help="Also in-progress, failed and deleted ones")] = False,
    state: StateDir = None,
    cluster_id: ClusterId = None,
) -> None:
    """Show a vault's spec, status (with causes and fixes when unavailable) and its backups."""
    mgr = manager(state, cluster_id)
    try:
        entry = mgr.describe(name)
    except BackupCenterError as err:
        raise _bad_input(err) from None
    _describe_entry(entry)
    if backups or all_backups:
        try:
            found = list_backups(mgr.store(name), include_incomplete=all_backups, include_deleted=all_backups)
        except BackupCenterError as err:
            console.print(f"backups: cannot list: {err.short()}", markup=False)
            return
        console.print(_backups_table(found))


@vault_app.command("check")
def check(
    names: Annotated[list[str] | None, typer.Argument(help="Vaults to check (default: all)")] = None,
    state: StateDir = None,
    cluster_id: ClusterId = None,
) -> None:
    """Check vaults now and record Available/Unavailable; exit code 1 if any is unavailable."""
    mgr = manager(state, cluster_id)
    try:
        statuses = {n: mgr.check(n) for n in names} if names else mgr.check_all()
    except BackupCenterError as err:
        raise _bad_input(err) from None
    table = Table("name", "phase", "checked (UTC)", "message")
    for vault_name, status in statuses.items():
        message = f"VaultError: backup vault is unavailable: {status.cause}" if status.cause else ""
        if status.error is not None and status.error.code != "VaultUnavailable":
            message = f"{status.error.kind}: {status.error.message}"
        table.add_row(vault_name, _phase(status), _when(status.last_check_time), message)
    console.print(table)
    if any(s.phase != VaultPhase.available for s in statuses.values()):
        raise typer.Exit(1)


@vault_app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="Vault name")],
    state: StateDir = None,
    cluster_id: ClusterId = None,
) -> None:
    """Delete a vault from this cluster.  Its bucket and backups stay; the name can never be used again."""
    try:
        entry = manager(state, cluster_id).delete(name)
    except BackupCenterError as err:
        raise _bad_input(err) from None
    console.print(f"vault {entry.name} deleted (its data in {entry.spec.url} is kept)")
