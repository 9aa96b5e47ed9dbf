"""``backupctl controller``, plugged into the CLI (entry point ``backupctl.commands``)."""

from __future__ import annotations

import asyncio
import logging
import os

import typer


def controller() -> None:
    """Run the controller: ApplicationBackup, ApplicationRestore, ConvertToSnapshot and DeleteRequest
    objects start, steer and delete their jobs (normally run by the controller Deployment)."""
    from controller import run

    logging.basicConfig(
        level=os.environ.get("BACKUPCENTER_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(run.serve())


def register(app: typer.Typer) -> None:
    app.command("controller")(controller)
