"""``backupctl jobs list|cancel``: every job of every kind, from Temporal's visibility store."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from temporalio.client import Client

from activities import search_attributes as sa
from backupctl import jobctl
from backupctl.asyncrun import with_client
from backupctl.console import BadInput, console
from backupctl.jobctl import visibility_query
from schemas.specs import JobKind

jobs_app = typer.Typer(help="Jobs of every kind.", no_args_is_help=True)


@jobs_app.command("list")
def list_jobs(
    kind: Annotated[str | None, typer.Option(help=", ".join(k.value for k in JobKind))] = None,
    phase: Annotated[str | None, typer.Option(help="e.g. WaitingForOperator")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many jobs")] = 100,
) -> None:
    """List jobs, newest first, with their phase and current step."""
    query = visibility_query(kind, phase)

    async def fetch(client: Client) -> list[tuple[str, ...]]:
        rows: list[tuple[str, ...]] = []
        async for wf in client.list_workflows(query, limit=limit):
            attrs = wf.typed_search_attributes
            rows.append(
                (
                    attrs.get(sa.JOB_KIND) or "",
                    wf.id,
                    attrs.get(sa.PHASE) or wf.status.name if wf.status else "",
                    attrs.get(sa.STEP) or "",
                    wf.start_time.strftime("%Y-%m-%d %H:%M:%S") if wf.start_time else "",
                )
            )
        return rows

    rows = with_client(fetch)
    table = Table("kind", "workflow id", "phase", "step", "started (UTC)")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"{len(rows)} job(s)")


@jobs_app.command("cancel")
def cancel(
    kind: Annotated[str, typer.Argument(help=", ".join(k.value for k in JobKind))],
    name: Annotated[str, typer.Argument(help="The job's name")],
) -> None:
    """Cancel a job of any kind (a drill cancels its restore and removes its scratch namespaces)."""
    if kind not in {k.value for k in JobKind}:
        raise BadInput(f"KIND: {kind!r} is not one of {', '.join(k.value for k in JobKind)}")
    with_client(lambda client: jobctl.signal_job(client, kind, name, "cancel"))
    console.print(f"cancel sent to {kind} {name}")
