"""``backupctl demo``: the product's main job end to end on the embedded defaults.

Starts the local environment (Temporal dev server, local Kubernetes, workers), seeds the sample
application, creates the default file:// vault, backs the application up (resources and disk
snapshots) through the workflow, and prints what happened and where to look in the Web UI.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from kubernetes.config import new_client_from_config
from rich.table import Table
from temporalio.client import Client

from backupctl import jobctl
from backupctl.console import console, state_dir
from kube.rest import Kube
from localdev import devenv
from schemas.settings import SettingsProvider
from schemas.specs import BackupSpec
from schemas.status import JobStatus
from workers.client import connect
from workflows.backup import BackupWorkflow

VAULT = "default"


def _vaults(kubeconfig: str) -> object:
    from activities.context import WorkerContext

    return WorkerContext(
        SettingsProvider.from_environment(), state_dir=state_dir(), kubeconfig=kubeconfig
    ).vaults()


EXCLUDED_LABEL = "backupcenter.io/agent-excluded"


def _exclude_one_nas_node(kube: Kube, manifest: dict[str, Any]) -> str | None:
    """Label one node that mounts the shared NAS volume as excluded, to show the policy at work:
    the volume is then copied by the node worker of another node that mounts it."""
    nas = [v for v in manifest["volumes"] if v["storageClass"] == "alibabacloud-cnfs-nas"]
    if not nas:
        return None
    ns, claim = nas[0]["namespace"], nas[0]["claim"]
    pods, _ = kube.list(f"/api/v1/namespaces/{ns}/pods")
    nodes = sorted(
        {
            p["spec"].get("nodeName")
            for p in pods
            if p["spec"].get("nodeName")
            and any(
                (v.get("persistentVolumeClaim") or {}).get("claimName") == claim
                for v in p["spec"].get("volumes", [])
            )
        }
    )
    if len(nodes) < 2:
        return None
    kube.patch(f"/api/v1/nodes/{nodes[0]}", {"metadata": {"labels": {EXCLUDED_LABEL: "true"}}})
    console.print(
        f"node {nodes[0]} labelled {EXCLUDED_LABEL}=true: {ns}/{claim} must be copied on {nodes[1]}"
    )
    return str(nodes[0])


def demo(
    keep: Annotated[bool, typer.Option(help="Leave the environment running afterwards")] = True,
    temporal_port: Annotated[int, typer.Option(help="Temporal frontend port")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Temporal Web UI port")] = 8233,
) -> None:
    """Run the demo: environment up, sample app, backup into the default vault, summary."""
    state = state_dir()
    console.rule("1. local environment")
    env = devenv.up(state, temporal_port=temporal_port, ui_port=ui_port)
    assert env.kubeconfig is not None
    os.environ["BACKUPCENTER_TEMPORAL_ADDRESS"] = env.temporal.address
    os.environ["KUBECONFIG"] = str(env.kubeconfig)
    console.print(f"Temporal {env.temporal.address}, Web UI {env.temporal.ui_url}")
    console.print(f"Kubernetes: KUBECONFIG={env.kubeconfig}; workers: {', '.join(env.workers)}")

    console.rule("2. sample application")
    from localdev.kube.seed import seed_sample_app

    manifest = seed_sample_app(new_client_from_config(str(env.kubeconfig)))
    console.print(
        f"namespaces {', '.join(manifest['namespaces'])}: {len(manifest['objects'])} objects, "
        f"{len(manifest['volumes'])} volumes with known files"
    )

    console.rule("3. vault")
    vaults = _vaults(str(env.kubeconfig))
    vault_dir = state / "vault"
    vault_dir.mkdir(parents=True, exist_ok=True)
    entry = vaults.create({"name": VAULT, "url": f"file://{vault_dir}"})  # type: ignore[attr-defined]
    console.print(f"vault {VAULT}: {entry.spec.url} ({vaults.check(VAULT).phase.value})")  # type: ignore[attr-defined]

    console.rule("4. backup")
    kube = Kube(new_client_from_config(str(env.kubeconfig)))
    excluded = _exclude_one_nas_node(kube, manifest)
    name = f"demo-{datetime.now(UTC):%Y%m%d%H%M%S}"
    spec = BackupSpec(name=name, vault=VAULT, include_namespaces=manifest["namespaces"])
    settings = SettingsProvider.from_environment().current()

    async def run_backup() -> JobStatus:
        client: Client = await connect(settings)
        await jobctl.start_job(
            client,
            settings,
            "backup",
            name,
            BackupWorkflow.run,
            spec,
            vault=VAULT,
            summary=f"demo backup of {', '.join(spec.include_namespaces)}",
        )
        return await jobctl.wait_job(client, "backup", name)

    try:
        status = asyncio.run(run_backup())
    finally:
        if excluded:
            kube.patch(f"/api/v1/nodes/{excluded}", {"metadata": {"labels": {EXCLUDED_LABEL: None}}})

    console.print()
    console.rule("summary")
    table = Table("what", "result")
    table.add_row("backup", f"{name}: {status.phase.value}")
    for key, value in status.summary.items():
        table.add_row(f"  {key}", str(value))
    for step in status.steps:
        if step.name.startswith("volume ") or step.name == "wait snapshots ready":
            table.add_row(f"  {step.name}", f"{step.state.value} {step.message or ''}")
    if excluded:
        table.add_row("node policy", f"{excluded} labelled {EXCLUDED_LABEL}=true during the backup")
    table.add_row("vault", f"{VAULT} → {vault_dir}")
    table.add_row(
        "Web UI", f"{env.temporal.ui_url}/namespaces/{settings.temporal_namespace}/workflows/backup-{name}"
    )
    table.add_row("stuck jobs", f"{env.temporal.ui_url} with query BackupPhase = 'WaitingForOperator'")
    console.print(table)
    if not keep:
        devenv.down(state)
        console.print("environment stopped")
    else:
        console.print("environment left running: `backupctl dev status`, `backupctl dev down`")
    raise typer.Exit(jobctl.exit_code(status))
