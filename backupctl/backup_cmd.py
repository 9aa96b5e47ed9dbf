"""``backupctl backup create|list|describe|verify|drill|cancel|retry|skip``."""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated, Any

import typer
from temporalio.client import Client

from backupctl import jobctl
from backupctl import options as opt
from backupctl.asyncrun import with_client
from backupctl.console import console
from backupctl.job_commands import KeepFollowing, add_operator_commands, start_job_command
from backupctl.restore_cmd import check_backup
from schemas.specs import BackupMode, BackupSpec, ClusterResources, DrillSpec, VerifySpec
from workflows.backup import BackupWorkflow
from workflows.drill import DrillWorkflow
from workflows.verify import VerifyWorkflow

backup_app = typer.Typer(help="Back up applications and their volumes.", no_args_is_help=True)


@backup_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Backup name (a Kubernetes name, unique)")],
    vault: opt.Vault,
    include_namespaces: opt.IncludeNamespaces = None,
    exclude_namespaces: opt.ExcludeNamespaces = None,
    mode: opt.Mode = BackupMode.application,
    selector: opt.Selector = None,
    include_resources: opt.IncludeResources = None,
    exclude_resources: opt.ExcludeResources = None,
    cluster_resources: opt.ClusterScope = ClusterResources.related,
    volume_data: opt.VolumeData = True,
    ttl: opt.Ttl = "30d",
    wait: Annotated[bool, typer.Option(help="Follow progress until the backup finishes")] = False,
    keep_following: KeepFollowing = False,
) -> None:
    """Start a backup."""
    spec = BackupSpec.model_validate(
        {
            "name": name,
            **opt.template_fields(
                vault,
                include_namespaces,
                exclude_namespaces,
                mode,
                selector,
                include_resources,
                exclude_resources,
                cluster_resources,
                volume_data,
                ttl,
            ),
        }
    )
    scope = ", ".join(spec.include_namespaces) or "all namespaces"
    start_job_command(
        "backup",
        name,
        BackupWorkflow.run,
        spec,
        vault=vault,
        summary=f"backup {name}: {scope} → vault {vault}",
        label="backup",
        wait=wait,
        keep_following=keep_following,
    )


@backup_app.command("list")
def list_backups(
    phase: Annotated[str | None, typer.Option(help="Only jobs in this phase")] = None,
) -> None:
    """Backup jobs of this cluster, newest first."""
    jobctl.print_job_list("backup", phase)


@backup_app.command("describe")
def describe(name: Annotated[str, typer.Argument()]) -> None:
    """Steps, errors with causes and fixes, per-item errors and warnings."""
    status = with_client(lambda client: jobctl.job_status(client, "backup", name))
    console.print(jobctl.render(status))


@backup_app.command("verify")
def verify(
    name: Annotated[str, typer.Argument(help="The backup to verify")],
    vault: Annotated[str, typer.Option(help="Vault that holds the backup")],
    read_data: Annotated[
        bool, typer.Option("--read-data", help="Read every pack and check every chunk (slower; finds rot)")
    ] = False,
    wait: Annotated[bool, typer.Option(help="Follow progress until the verification finishes")] = False,
) -> None:
    """Check that a backup is restorable without restoring it: its resource bundles, its volumes'
    file-level snapshots (with --read-data every chunk) and its disk snapshots.  The report is kept
    with the backup and shown by `restore backups`; findings end the job Failed, each one naming
    the object at fault and what it breaks."""
    spec = VerifySpec(name=verify_name(name), backup=name, vault=vault, read_data=read_data)
    summary = f"verify backup {name} in vault {vault}" + (" (read data)" if read_data else "")
    _start_check("verify", VerifyWorkflow.run, spec, summary, "verification", wait)


@backup_app.command("drill")
def drill(
    name: Annotated[str, typer.Argument(help="The backup to restore in a drill")],
    vault: Annotated[str, typer.Option(help="Vault that holds the backup")],
    wait: Annotated[bool, typer.Option(help="Follow progress until the drill finishes")] = False,
) -> None:
    """Prove the backup restorable by restoring it: every namespace of the backup goes to a new
    scratch namespace of this cluster (<namespace>-drill-<id>), claims must bind and file-level data
    is checked chunk by chunk, every restored object is looked up, then the scratch namespaces and
    their volumes are removed.  The report (RTO, RPO, differences) is kept with the backup and shown
    by `restore backups`; differences end the job Failed.  The source namespaces are not touched."""
    spec = DrillSpec(name=verify_name(name), backup=name, vault=vault)
    _start_check("drill", DrillWorkflow.run, spec, f"restore drill of backup {name} in vault {vault}",
                 "restore drill", wait)


def _start_check(
    kind: str, run: Any, spec: VerifySpec | DrillSpec, summary: str, label: str, wait: bool
) -> None:
    """Start a job that proves a backup (verify, drill); an unknown backup is refused first (exit 2)."""

    async def precheck(_client: Client) -> None:
        await asyncio.to_thread(check_backup, spec.backup, spec.vault)

    start_job_command(kind, spec.name, run, spec, vault=spec.vault, summary=summary, label=label,
                      wait=wait, precheck=precheck)


def verify_name(backup: str) -> str:
    """``<backup>-<random>``: each verification (or drill) is its own job (the job id adds the kind)."""
    suffix = secrets.token_hex(3)
    return f"{backup[: 63 - len(suffix) - 1].rstrip('-')}-{suffix}"


add_operator_commands(
    backup_app,
    "backup",
    label="backup",
    cancel_help="Stop the backup and remove what it created (snapshots, uncommitted vault objects).",
    skip_help="Give up on the failed per-volume step; the backup ends PartiallyFailed.",
)
