"""``backupctl delete backup|restore|convert NAME``: delete requests, run as workflows.

A delete request has its own job name, ``<kind>-<target>-<random>``, so requesting it again
after a failure is always possible; the target's name is free once a request completes.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated

import typer
from temporalio.client import Client

from backupctl import jobctl
from backupctl.console import BadInput
from backupctl.job_commands import add_operator_commands, start_job_command
from backupctl.vault_cmd import manager, named_store
from schemas.specs import DeleteSpec, JobKind
from vault import catalog, conversions
from workflows.delete import DeleteWorkflow

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


def _in_a_vault(kind: JobKind, target: str, vault: str | None) -> bool:
    """Whether the named vault (or any registered one) holds the backup or conversion."""
    vaults = manager()
    names = [vault] if vault else [entry.name for entry in vaults.list()]
    for name in names:
        store = named_store(name) if vault else vaults.store(name)
        if kind is JobKind.convert:
            if conversions.get_conversion(store, target) is not None:
                return True
            continue
        found, _ = catalog.readable_parts(store, target)  # a damaged backup counts as there
        if found is not None:
            return True
    return False


async def _check_target(client: Client, kind: JobKind, target: str, vault: str | None) -> None:
    """Refuse, before a delete request starts, a target that exists nowhere (exit 2, nothing started)."""
    if await jobctl.job_exists(client, kind.value, target):
        return
    if kind is not JobKind.restore and await asyncio.to_thread(_in_a_vault, kind, target, vault):
        return
    noun = {JobKind.backup: "backup", JobKind.restore: "restore", JobKind.convert: "conversion"}[kind]
    where = f"vault {vault}" if vault else "any vault" if kind is not JobKind.restore else "this cluster"
    raise BadInput(f"{noun} {target!r} not found (no {kind.value} job of that name, nothing in {where}); "
                   f"`backupctl {kind.value} list` shows what exists")


def _run(kind: JobKind, target: str, vault: str | None, wait: bool) -> None:
    spec = DeleteSpec(name=request_name(kind, target), target_kind=kind, target=target, vault=vault)
    start_job_command(
        "delete",
        spec.name,
        DeleteWorkflow.run,
        spec,
        vault=vault or "",
        summary=f"delete {kind.value} {target}",
        label="delete request",
        wait=wait,
        precheck=lambda client: _check_target(client, kind, target, vault),
    )


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


# A delete request waiting for an operator is steered like every job, by its request name.
add_operator_commands(
    delete_app,
    "delete",
    label="delete request",
    cancel_help="Stop the delete request (what is deleted stays deleted; request it again to finish).",
    skip_help="Not used by delete requests: their steps are not per-item.",
)
