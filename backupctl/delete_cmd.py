"""``backupctl delete backup|restore|convert NAME``: delete requests, run as workflows.

A delete request has its own job name, ``<kind>-<target>-<random>``, so requesting it again
after a failure is always possible; the target's name is free once a request completes.
"""

from __future__ import annotations

import secrets
from typing import Annotated

import typer
from temporalio.client import Client

from backupctl import jobctl
from backupctl.asyncrun import with_client
from backupctl.console import console, load_settings
from schemas.specs import DeleteSpec, JobKind
from workflows.delete import DeleteWorkflow
from workflows.ids import job_id

delete_app = typer.Typer(
    help="Delete backups (snapshots, vault data), restore jobs and conversions; frees their names.",
    no_args_is_help=True,
)

Wait = Annotated[bool, typer.Option(help="Follow progress until the delete finishes")]


def request_name(kind: JobKind, target: str) -> str:
    """``<kind>-<target>-<random>``, cut to a Kubernetes name (the job id adds ``delete-``)."""
    suffix = secrets.token_hex(3)
    head = f"{kind.value}-{target}"[: 63 - len(suffix) - 1].rstrip("-")
    return f"{head}-{suffix}"


def _run(kind: JobKind, target: str, vault: str | None, wait: bool) -> None:
    spec = DeleteSpec(name=request_name(kind, target), target_kind=kind, target=target, vault=vault)
    settings = load_settings()

    async def go(client: Client) -> int:
        await jobctl.start_job(
            client,
            settings,
            "delete",
            spec.name,
            DeleteWorkflow.run,
            spec,
            vault=vault or "",
            summary=f"delete {kind.value} {target}",
        )
        console.print(f"delete request {spec.name} started (workflow {job_id('delete', spec.name)})")
        if not wait:
            return 0
        return jobctl.exit_code(await jobctl.wait_job(client, "delete", spec.name))

    raise typer.Exit(with_client(go))


@delete_app.command("backup")
def delete_backup(
    name: Annotated[str, typer.Argument(help="Backup name")],
    vault: Annotated[
        str | None, typer.Option(help="Vault holding it (default: every vault is searched)")
    ] = None,
    wait: Wait = True,
) -> None:
    """On the backup's source cluster: remove its VolumeSnapshots, vault records and data, and free
    the name.  On any other cluster: mark it deleted in the vault (hidden everywhere)."""
    _run(JobKind.backup, name, vault, wait)


@delete_app.command("restore")
def delete_restore(
    name: Annotated[str, typer.Argument(help="Restore name")],
    wait: Wait = True,
) -> None:
    """Remove the restore job and its working data, and free the name; restored objects stay."""
    _run(JobKind.restore, name, None, wait)


@delete_app.command("convert")
def delete_convert(
    name: Annotated[str, typer.Argument(help="Conversion name")],
    vault: Annotated[
        str | None, typer.Option(help="Vault holding it (default: every vault is searched)")
    ] = None,
    wait: Wait = True,
) -> None:
    """Reset a conversion: remove its converted snapshots, leftover temporaries and vault record, and
    free the name so it can run again."""
    _run(JobKind.convert, name, vault, wait)
