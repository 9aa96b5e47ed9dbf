"""``backupctl dev up|down|status``: the local environment.

``up`` starts, detached and recorded under the state directory (``.dev/`` by default): the
Temporal dev server (SQLite file ``.dev/temporal.db``, Web UI on, search attributes
registered), the local Kubernetes control plane with its node/storage agent (kubeconfig in
``.dev/kubeconfig``), and the product's workers.  ``down`` stops exactly what ``up`` started,
by recorded process id.  Both are idempotent.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from backupctl.console import console, state_dir
from localdev import devenv

dev_app = typer.Typer(
    help="Run the product locally: Temporal, a local Kubernetes, workers.", no_args_is_help=True
)


@dev_app.command("up")
def up(
    temporal_port: Annotated[int, typer.Option(help="Temporal frontend port")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Temporal Web UI port")] = 8233,
    cluster: Annotated[bool, typer.Option(help="Also start the local Kubernetes cluster")] = True,
    workers: Annotated[bool, typer.Option(help="Also start the control and node workers")] = True,
) -> None:
    """Start the local environment (or report the parts already running)."""
    env = devenv.up(
        state_dir(), temporal_port=temporal_port, ui_port=ui_port, with_cluster=cluster, with_workers=workers
    )
    console.print(f"Temporal dev server: {env.temporal.address} (pid {env.temporal.pid})")
    console.print(f"Temporal Web UI:     {env.temporal.ui_url}")
    if env.kubeconfig:
        console.print(f"Kubernetes:          export KUBECONFIG={env.kubeconfig}")
    for name, pid in env.workers.items():
        console.print(f"Worker {name}: pid {pid}")
    if env.settings is not None:
        console.print(f"Settings:            {env.settings} (edit it: the workers re-read it, no restart)")


@dev_app.command("down")
def down() -> None:
    """Stop everything ``dev up`` started."""
    stopped = devenv.down(state_dir())
    console.print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@dev_app.command("status")
def status() -> None:
    """Say what runs and where."""
    table = Table("component", "state", "details")
    for name, info in devenv.status(state_dir()).items():
        state = info.pop("state", "unknown")
        table.add_row(name, state, "  ".join(f"{k}={v}" for k, v in info.items()))
    console.print(table)
