"""The operator's commands every job kind shares: ``cancel``, ``retry`` and ``skip`` signals."""

from __future__ import annotations

from typing import Annotated

import typer

from backupctl import jobctl
from backupctl.asyncrun import with_client
from backupctl.console import console


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
