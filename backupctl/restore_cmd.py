"""``backupctl restore create|list|describe|cancel|retry|skip|backups|files``."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table
from temporalio.client import Client

from activities.file_restore import find_files
from backupctl import jobctl
from backupctl import options as opt
from backupctl.asyncrun import with_client
from backupctl.console import BadInput, console, load_settings
from backupctl.job_commands import KeepFollowing, add_operator_commands, start_job_command
from backupctl.vault_cmd import manager, named_store
from datamover import restore_tree
from datamover.errors import DataMoverError, PathNotInSnapshot, UnsafeChoice, UnsafePath
from kube.restore.records import RestoreFolder
from schemas.errors import BackupCenterError
from schemas.specs import ExistingResourcePolicy, FileRestoreSpec, JobKind, RestoreSpec
from schemas.status import JobStatus
from vault import verifications
from vault.catalog import committed_backup, file_copy, list_backups
from workflows.file_restore import FileRestoreWorkflow
from workflows.restore import RestoreWorkflow

restore_app = typer.Typer(
    help="Restore backups into this cluster (also backups of other clusters).", no_args_is_help=True
)

Mapping = Annotated[str | None, typer.Option(help="old:new pairs, comma-separated, e.g. a:b,c:d")]
# Namespaces are named as in the backup (before --namespace-mapping).
IncludeNamespaces = Annotated[str | None, typer.Option(help="Backed-up namespaces to restore, e.g. a,b")]
ExcludeNamespaces = Annotated[str | None, typer.Option(help="Backed-up namespaces to leave out, e.g. a,b")]
IncludeResources = Annotated[str | None, typer.Option(help="Only these types, e.g. deploy,cm")]
ExcludeResources = Annotated[str | None, typer.Option(help="Leave out these types, e.g. pvc,pv")]


def parse_mapping(option: str, value: str | None, *, separators: str = ":=") -> dict[str, str]:
    """``a:b,c:d`` → {a: b, c: d}; the first separator found in each pair splits it."""
    result: dict[str, str] = {}
    for pair in opt.split(value):
        cut = min((i for i in (pair.find(s) for s in separators) if i > 0), default=-1)
        old, new = (pair[:cut].strip(), pair[cut + 1 :].strip()) if cut > 0 else ("", "")
        if not old or not new:
            shown = " or ".join(f"old{s}new" for s in separators)
            raise BadInput(f"{option}: {pair!r} is not {shown}")
        if old in result:
            raise BadInput(f"{option}: {old!r} is mapped twice")
        result[old] = new
    return result


def check_backup(backup: str, vault: str) -> None:
    """Refuse, before anything starts, a backup that is not restorable from the vault (exit 2)."""
    try:
        committed_backup(named_store(vault), backup, vault)
    except BackupCenterError as err:
        if err.code in ("NotFound", "BackupNotInVault", "InvalidSpec"):
            raise BadInput(f"{err.short()}; `backupctl restore backups --vault {vault}` lists what can be "
                           "restored") from None
        raise


@restore_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Restore name (a Kubernetes name, unique)")],
    backup: Annotated[str, typer.Option(help="Backup to restore (see `backupctl restore backups`)")],
    vault: Annotated[str, typer.Option(help="Vault holding the backup")],
    include_namespaces: IncludeNamespaces = None,
    exclude_namespaces: ExcludeNamespaces = None,
    include_resources: IncludeResources = None,
    exclude_resources: ExcludeResources = None,
    namespace_mapping: Mapping = None,
    storage_class_mapping: Mapping = None,
    image_registry_mapping: Annotated[
        str | None,
        typer.Option(
            help="old=new registry prefixes, comma-separated, "
            "e.g. docker.io/library/=registry.example.com/team/ "
            "('=' because registries may carry a :port)"
        ),
    ] = None,
    convert_to_access_modes: Annotated[
        str | None, typer.Option(help="Access modes for converted or disk volumes, e.g. ReadWriteOnce")
    ] = None,
    preserve_node_ports: Annotated[
        bool,
        typer.Option(
            help="Keep every node port of NodePort and LoadBalancer services as in the backup, "
            "auto-assigned ones included (and healthCheckNodePort of LoadBalancer/Local services); "
            "they fail where the ports are taken, e.g. in the source cluster. Without it, only node "
            "ports set explicitly (kubectl apply, server-side apply, Helm) are kept and the others "
            "are allocated anew"
        ),
    ] = False,
    existing_resource_policy: Annotated[
        ExistingResourcePolicy,
        typer.Option(
            help="none: keep existing objects (reported as skipped); "
            "update: bring them to the backed-up state"
        ),
    ] = ExistingResourcePolicy.none,
    volume_data: Annotated[bool, typer.Option(help="Restore volume data (else volumes start empty)")] = True,
    wait: Annotated[bool, typer.Option(help="Follow progress until the restore finishes")] = False,
    keep_following: KeepFollowing = False,
) -> None:
    """Start a restore."""
    check_backup(backup, vault)
    spec = RestoreSpec(
        name=name,
        backup=backup,
        vault=vault,
        include_namespaces=opt.split(include_namespaces),
        exclude_namespaces=opt.split(exclude_namespaces),
        include_resources=opt.split(include_resources),
        exclude_resources=opt.split(exclude_resources),
        namespace_mapping=parse_mapping("--namespace-mapping", namespace_mapping),
        storage_class_mapping=parse_mapping("--storage-class-mapping", storage_class_mapping),
        image_registry_mapping=parse_mapping(
            "--image-registry-mapping", image_registry_mapping, separators="="
        ),
        convert_to_access_modes=opt.split(convert_to_access_modes),
        preserve_node_ports=preserve_node_ports,
        existing_resource_policy=existing_resource_policy,
        volume_data=volume_data,
    )
    start_job_command(
        "restore",
        name,
        RestoreWorkflow.run,
        spec,
        vault=vault,
        summary=f"restore {name}: backup {backup} from vault {vault}",
        label="restore",
        wait=wait,
        keep_following=keep_following,
    )


@restore_app.command("list")
def list_restores(
    phase: Annotated[str | None, typer.Option(help="Only jobs in this phase")] = None,
) -> None:
    """Restore jobs of this cluster, newest first."""
    jobctl.print_job_list("restore", phase)


def _print_missing(status: JobStatus, limit: int) -> None:
    vault = str(status.summary.get("vault", ""))
    if not vault:
        console.print("missing: the restore has not recorded its vault yet")
        return
    folder = RestoreFolder.of(manager().store(vault), load_settings().cluster_id, status.name)
    table = Table(
        "reason", "object", "why", title="What the restore did not (or no longer) put in the cluster"
    )
    shown = total = 0
    for entry in folder.read_explanations():
        total += 1
        if shown < limit:
            where = "/".join(p for p in (entry.resource, entry.namespace, entry.name) if p)
            table.add_row(entry.reason.value, where or "-", entry.message)
            shown += 1
    console.print(table)
    if total > shown:
        console.print(f"… and {total - shown} more (--limit)")


@restore_app.command("describe")
def describe(
    name: Annotated[str, typer.Argument()],
    missing: Annotated[
        bool,
        typer.Option(
            help="Also explain every object the restore did not create (not in backup, excluded, skipped, "
            "failed, removed by GC)"
        ),
    ] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many explanations")] = 200,
) -> None:
    """Steps, errors with causes and fixes, per-item errors and warnings, outcome counts."""
    status = with_client(lambda client: jobctl.job_status(client, "restore", name))
    console.print(jobctl.render(status))
    if missing:
        _print_missing(status, limit)


add_operator_commands(
    restore_app,
    "restore",
    label="restore",
    cancel_help="Stop the restore; objects it created stay, its temporary snapshot objects are removed.",
    skip_help="Give up on the failed phase: its objects count as failed, the restore ends PartiallyFailed.",
)


@restore_app.command("backups")
def backups(
    vault: Annotated[str, typer.Option(help="Vault to list")],
) -> None:
    """The backups this cluster can restore from a vault: committed, not deleted, of any cluster."""
    store = named_store(vault)
    found = list_backups(store)
    table = Table("backup", "source cluster", "completed (UTC)", "namespaces", "resources", "volumes",
                  "last verification", "last restore drill")
    for b in found:
        r = b.record
        if r is None:
            continue
        checked = verifications.latest(store, b.name)
        drilled = verifications.latest_drill(store, b.name)
        table.add_row(
            b.name,
            r.source_cluster,
            f"{r.completed_at:%Y-%m-%d %H:%M:%S}",
            ", ".join(r.namespaces),
            str(r.resource_count),
            str(r.volume_count),
            checked.line() if checked else "never",
            drilled.line() if drilled else "never",
        )
    console.print(table)
    console.print(f"{len(found)} backup(s) in vault {vault}")


def check_file_restore(spec: FileRestoreSpec) -> None:
    """Refuse, before the job starts, what its first step would refuse from the vault (exit 2): a
    backup not restorable, a volume without a file-level copy, a path unsafe or not in the copy."""
    check_backup(spec.backup, spec.vault)
    try:
        find_files(named_store(spec.vault), spec)
    except BackupCenterError as err:
        if err.code != "InvalidSpec":
            raise
        option = {"volume": "--volume", "paths": "--path"}.get(err.params.get("field", ""), "--path")
        raise BadInput(f"{option}: {err.params.get('reason', err.message)}") from None


def parse_pvc_target(value: str) -> tuple[str, str, str]:
    """``ns/pvc[:subdir]`` → (namespace, pvc, subdir)."""
    ref, _, subdir = value.partition(":")
    namespace, _, pvc = ref.partition("/")
    if not namespace or not pvc:
        raise BadInput(f"--to-pvc: {value!r} is not <namespace>/<pvc>[:<directory>]")
    return namespace, pvc, subdir


def file_restore_name(volume: str) -> str:
    """``<pvc>-files-<random>``: each file restore is its own job."""
    suffix = secrets.token_hex(3)
    pvc = volume.partition("/")[2] or "volume"
    head = f"{pvc}-files"[: 63 - len(suffix) - 1].strip("-.").replace(".", "-")
    return f"{head}-{suffix}"


@restore_app.command("files")
def files(
    backup: Annotated[str, typer.Option(help="Backup to take the files from")],
    vault: Annotated[str, typer.Option(help="Vault that holds the backup")],
    volume: Annotated[str, typer.Option(help="The volume, as <namespace>/<pvc> in the backup")],
    path: Annotated[
        list[str], typer.Option(help="A file or directory inside the volume, from its root (repeatable)")
    ],
    to_dir: Annotated[
        Path | None, typer.Option(help="Local directory to write them under (created if missing)")
    ] = None,
    to_pvc: Annotated[
        str | None,
        typer.Option(help="A PVC of this cluster, <namespace>/<pvc>[:<directory>], in use or not: a job "
                     "writes the files into it through the node worker of the node that mounts it"),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace files that are already there")] = False,
    name: Annotated[
        str | None, typer.Option(help="Job name with --to-pvc (default <pvc>-files-<random>)")
    ] = None,
    wait: Annotated[bool, typer.Option(help="With --to-pvc, follow the job until it finishes")] = False,
) -> None:
    """Restore chosen files of a volume's file-level copy into a local directory (--to-dir) or into a
    PVC of this cluster (--to-pvc, a job).  The paths keep their place below the volume's root (below
    <directory> with --to-pvc ns/pvc:<directory>); files already there are kept unless --overwrite,
    and nothing else in the target changes."""
    if (to_dir is None) == (to_pvc is None):
        raise BadInput("give --to-dir or --to-pvc (one of them)")
    if to_pvc is not None:
        _files_to_pvc(backup, vault, volume, path, to_pvc, overwrite, name, wait)
        return
    assert to_dir is not None
    check_backup(backup, vault)
    store = named_store(vault)
    try:
        snapshot = file_copy(store, backup, volume)
    except BackupCenterError as err:
        if err.code != "InvalidSpec":
            raise
        raise BadInput(f"--volume: {err.params['reason']}") from None
    if to_dir.exists() and not to_dir.is_dir():
        raise BadInput(f"--to-dir: {to_dir} exists and is not a directory")
    try:
        summary = restore_tree(store, snapshot, to_dir, paths=path, overwrite=overwrite)
    except (PathNotInSnapshot, UnsafeChoice) as err:
        raise BadInput(f"--path: {err}") from None
    except UnsafePath as err:
        raise BadInput(f"refused: {err}") from None
    except (DataMoverError, OSError) as err:
        raise BackupCenterError("VolumeCopyFailed", volume=volume, reason=str(err)) from None
    kept = f", {summary.kept_existing} already there kept" if summary.kept_existing else ""
    console.print(f"{summary.files} file(s), {summary.dirs} dir(s), {summary.bytes} bytes of {volume} "
                  f"restored under {to_dir}{kept} (every file checked against its digest)")
    for warning in summary.warning_paths:
        console.print(f"[yellow]{warning}[/yellow]")


def _files_to_pvc(backup: str, vault: str, volume: str, paths: list[str], to_pvc: str, overwrite: bool,
                  name: str | None, wait: bool) -> None:
    namespace, pvc, subdir = parse_pvc_target(to_pvc)
    try:
        spec = FileRestoreSpec(
            name=name or file_restore_name(volume), backup=backup, vault=vault, volume=volume, paths=paths,
            target_namespace=namespace, target_pvc=pvc, subdir=subdir, overwrite=overwrite,
        )
    except ValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        option = "--to-pvc" if field.startswith("target_") or field == "subdir" else f"--{field or 'path'}"
        raise BadInput(f"{option.rstrip('s')}: {first['msg'].removeprefix('Value error, ')}") from None

    async def precheck(_client: Client) -> None:
        await asyncio.to_thread(check_file_restore, spec)

    start_job_command(
        JobKind.files.value, spec.name, FileRestoreWorkflow.run, spec, vault=vault,
        summary=f"restore files of {volume} from backup {backup} into {spec.target}",
        label="file restore", wait=wait, precheck=precheck,
    )
