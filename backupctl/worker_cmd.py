"""``backupctl worker control|node``: run a worker process in the foreground."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Annotated

import typer

from backupctl.console import BadInput
from schemas.common import check_dns_subdomain
from workers import run as worker_run

worker_app = typer.Typer(
    help="Run a worker (normally started by the Deployment / DaemonSet).", no_args_is_help=True
)


def _logging() -> None:
    logging.basicConfig(
        level=os.environ.get("BACKUPCENTER_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@worker_app.command("control")
def control() -> None:
    """The control pool: every workflow, and cluster and vault activities."""
    _logging()
    asyncio.run(worker_run.serve_control())


@worker_app.command("node")
def node(
    node: Annotated[str | None, typer.Option(help="This node's name (default: env NODE_NAME)")] = None,
    kubelet_root: Annotated[
        str | None,
        typer.Option(help="Kubelet root (default: KUBELET_ROOT_PATH, then the kubelet_root_path setting)"),
    ] = None,
) -> None:
    """A node worker: file-level volume work for the volumes mounted on this node."""
    name = node or os.environ.get("NODE_NAME")
    if not name:
        raise BadInput("--node: missing; pass it or set NODE_NAME from the downward API")
    try:
        check_dns_subdomain(name)
    except ValueError as err:
        raise BadInput(f"--node: {err}") from None
    _logging()
    asyncio.run(worker_run.serve_node(name, kubelet_root))
