"""What every job kind's commands share: ``create`` (start, follow) and the ``cancel``, ``retry`` and
``skip`` signals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, NoReturn

import typer
from pydantic import BaseModel
from temporalio.client import Client

from backupctl import jobctl
from backupctl.asyncrun import with_client
from backupctl.console import console, load_settings
from schemas.ids import job_id


def add_operator_commands(
    app: typer.Typer, kind: str, *, label: str, cancel_help: str, skip_help: str
) -> None:
    """Register ``cancel|retry|skip NAME`` on ``app`` for ``kind`` jobs (``label`` names them in output)."""

    def send(name: str, signal: str) -> None:
        with_client(lambda client: jobctl.signal_job(client, kind, name, signal))
        console.print(f"{signal} sent to {label} {name}")

    def cancel(name: Annotated[str, typer.Argument()]) -> None:
        send(name, "cancel")

    def retry(name: Annotated[str, typer.Argument()]) -> None:
        send(name, "retry")

    def skip(name: Annotated[str, typer.Argument()]) -> None:
        send(name, "skip")

    app.command("cancel", help=cancel_help)(cancel)
    app.command("retry", help="Run the failed step again (after fixing its cause).")(retry)
    app.command("skip", help=skip_help)(skip)


KeepFollowing = Annotated[
    bool,
    typer.Option(
        help="With --wait, keep following while the job waits for an operator (else --wait returns "
        f"then, with exit code {jobctl.EXIT_WAITING})"
    ),
]


def start_job_command(
    kind: str,
    name: str,
    run: Any,
    spec: BaseModel,
    *,
    vault: str,
    summary: str,
    label: str,
    wait: bool,
    keep_following: bool = False,
    precheck: Callable[[Client], Awaitable[None]] | None = None,
) -> NoReturn:
    """``<kind> create`` (and delete requests): check what can be checked before anything starts
    (``precheck``: BadInput, exit 2), start the job under its unique name, then follow it when asked
    (exit code of its outcome, or of a wait for an operator) or return at once.  The one way every
    command starts and follows a job."""
    settings = load_settings()

    async def go(client: Client) -> int:
        if precheck is not None:
            await precheck(client)
        await jobctl.start_job(client, settings, kind, name, run, spec, vault=vault, summary=summary)
        console.print(f"{label} {name} started (workflow {job_id(kind, name)})")
        if not wait:
            return 0
        status = await jobctl.wait_job(client, kind, name, through_operator_waits=keep_following)
        return jobctl.exit_code(status)

    raise typer.Exit(with_client(go))
