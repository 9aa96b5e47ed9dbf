"""The whole local environment as one unit: Temporal, the local cluster, the workers."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from localdev import ecs_process, processes, temporal_server
from localdev.temporal_server import TemporalDevServer

if TYPE_CHECKING:
    from temporalio.client import Client

    from activities.context import WorkerContext

CONTROL_WORKER = "worker-control"
CONTROLLER = "controller"
NODE_WORKER_PREFIX = "worker-node-"


@dataclass
class DevEnvironment:
    temporal: TemporalDevServer
    kubeconfig: Path | None = None
    workers: dict[str, int] = field(default_factory=dict)
    ecs_endpoint: str | None = None  # the local ECS endpoint (a test double) the disk snapshots live in
    settings: Path | None = None  # the settings file the workers read (and re-read on change)


SETTINGS_FILE = "settings.yaml"
SETTINGS_TEMPLATE = """\
# Settings of the local environment's workers; every setting and its default: schemas/settings.py.
# Edit and save: the workers re-read this file within seconds, no restart needed.  For example:
#   snapshot_ready_timeout: 20m
#   backup_max_workers: 5
# BACKUPCENTER_<SETTING> variables set before `backupctl dev up` override what is here.
"""


def settings_file(state: Path) -> Path:
    """The settings file of the local environment: ``BACKUPCENTER_SETTINGS`` when it is set, else
    ``<state>/settings.yaml``, created (commented, all defaults) the first time."""
    configured = os.environ.get("BACKUPCENTER_SETTINGS")
    if configured:
        return Path(configured).absolute()
    path = (state / SETTINGS_FILE).absolute()
    if not path.exists():
        path.write_text(SETTINGS_TEMPLATE)
    return path


def _cluster_dir(state: Path) -> Path:
    return state / "cluster"


def snapshot_store(state: Path) -> Path:
    """Where the dev cluster's disk driver keeps snapshot data (another local cluster may share it)."""
    from localdev.kube.agent.model import Layout

    return Layout.of(_cluster_dir(state).resolve()).snapshot_store


def up(
    state: Path,
    *,
    temporal_port: int = 7233,
    ui_port: int = 8233,
    with_cluster: bool = True,
    with_workers: bool = True,
) -> DevEnvironment:
    state.mkdir(parents=True, exist_ok=True)
    env = DevEnvironment(temporal_server.up(state, port=temporal_port, ui_port=ui_port))
    env.settings = settings_file(state)
    if with_cluster:
        from localdev.kube import devcluster
        from schemas.settings import SettingsProvider

        # Disk snapshots are ECS snapshots of a local endpoint, as on Alibaba Cloud (issue 8).
        ecs = ecs_process.up(state)
        devcluster.up(_cluster_dir(state), ecs_endpoint=ecs.endpoint)
        kubeconfig = state / "kubeconfig"
        shutil.copyfile(_cluster_dir(state) / "kubeconfig", kubeconfig)
        env.kubeconfig = kubeconfig
        namespace = SettingsProvider.from_environment().current().product_namespace
        _install_product_kinds(kubeconfig, namespace)
        ecs_process.install_credentials(kubeconfig, namespace, ecs)
        env.ecs_endpoint = ecs.endpoint
    if with_workers:
        env.workers = _start_workers(state, env)
    return env


def _install_product_kinds(kubeconfig: Path, namespace: str) -> None:
    """What `kubectl apply -f deploy/namespace.yaml -f deploy/crds.yaml` does in a real cluster."""
    from kubernetes.config import new_client_from_config

    from kube import job_objects
    from kube.rest import Kube
    from schemas import resources

    kube = Kube(new_client_from_config(str(kubeconfig)))
    kube.create("/api/v1/namespaces", {"metadata": {"name": namespace}}, exist_ok=True)
    job_objects.install_crds(kube, list(resources.crds()))


def _worker_env(state: Path, env: DevEnvironment) -> dict[str, str]:
    child = dict(os.environ)
    child["BACKUPCENTER_TEMPORAL_ADDRESS"] = env.temporal.address
    child["BACKUPCENTER_STATE_DIR"] = str(state)
    if env.settings is not None:
        child["BACKUPCENTER_SETTINGS"] = str(env.settings)
    if env.kubeconfig:
        child["KUBECONFIG"] = str(env.kubeconfig)
    if env.ecs_endpoint:
        # Defaults only: an operator's own BACKUPCENTER_* choice wins.
        child.setdefault("BACKUPCENTER_ENABLE_ECS_SNAPSHOT", "true")
        child.setdefault("BACKUPCENTER_ECS_ENDPOINT", env.ecs_endpoint)
        child.setdefault("BACKUPCENTER_CLOUD_CREDENTIALS_SECRET", ecs_process.CREDENTIALS_SECRET)
    return child


def _start_workers(state: Path, env: DevEnvironment) -> dict[str, int]:
    started: dict[str, int] = {}
    child_env = _worker_env(state, env)
    backupctl = str(Path(sys.executable).parent / "backupctl")
    wanted: dict[str, list[str]] = {CONTROL_WORKER: [backupctl, "worker", "control"]}
    if env.kubeconfig:
        wanted[CONTROLLER] = [backupctl, "controller"]
    if env.kubeconfig and _node_work_exists():
        for node, kubelet_root in node_kubelet_roots(env.kubeconfig).items():
            wanted[NODE_WORKER_PREFIX + node] = [
                backupctl,
                "worker",
                "node",
                "--node",
                node,
                "--kubelet-root",
                kubelet_root,
            ]
    for name, argv in wanted.items():
        record = processes.read_record(state, name)
        if record is None or not processes.is_running(record):
            record = processes.spawn(state, name, argv, env=child_env)
        started[name] = record.pid
    return started


# The local agent publishes each simulated node's kubelet root on the Node object.
KUBELET_ROOT_ANNOTATION = "localdev.backupcenter.io/kubelet-root"


def node_kubelet_roots(kubeconfig: Path) -> dict[str, str]:
    """Node name → kubelet root, for every node that can run a node worker (not virtual ones)."""
    from kubernetes.config import new_client_from_config

    from kube.rest import Kube

    nodes, _ = Kube(new_client_from_config(str(kubeconfig))).list("/api/v1/nodes")
    roots = {}
    for node in nodes:
        meta = node["metadata"]
        root = (meta.get("annotations") or {}).get(KUBELET_ROOT_ANNOTATION)
        if root and (meta.get("labels") or {}).get("type") != "virtual-kubelet":
            roots[meta["name"]] = root
    return roots


def _node_work_exists() -> bool:
    from workers.registry import node_activities

    return bool(node_activities())


def down(state: Path) -> list[str]:
    stopped: list[str] = []
    for record_file in sorted([*state.glob("worker-*.json"), *state.glob(f"{CONTROLLER}.json")]):
        if processes.stop(state, record_file.stem):
            stopped.append(record_file.stem)
    if _cluster_dir(state).exists():
        from localdev.kube import devcluster

        if devcluster.status(_cluster_dir(state)).get("running"):
            stopped.append("kubernetes")
        devcluster.down(_cluster_dir(state))
    if ecs_process.down(state):
        stopped.append("ecs")
    if temporal_server.down(state):
        stopped.append("temporal")
    return stopped


def status(state: Path) -> dict[str, dict[str, str]]:
    result: dict[str, dict[str, str]] = {"temporal": temporal_server.status(state)}
    if processes.read_record(state, ecs_process.PROCESS_NAME) is not None:
        result["ecs"] = ecs_process.status(state)
    if _cluster_dir(state).exists():
        from localdev.kube import devcluster

        cluster = devcluster.status(_cluster_dir(state))
        result["kubernetes"] = {
            "state": "running" if cluster.get("running") else "stopped",
            "server": str(cluster.get("server") or ""),
            "kubeconfig": str(cluster.get("kubeconfig") or ""),
        }
    for record_file in sorted([*state.glob("worker-*.json"), *state.glob(f"{CONTROLLER}.json")]):
        record = processes.read_record(state, record_file.stem)
        if record is not None:
            running = processes.is_running(record)
            result[record.name] = {
                "state": "running" if running else "stopped",
                "pid": str(record.pid),
                "log": record.log,
            }
    return result


@asynccontextmanager
async def workers_in_process(
    client: Client, ctx: WorkerContext, *, control: bool = True
) -> AsyncIterator[None]:
    """The product's workers for ctx's cluster in this process: the control worker (unless
    ``control`` is False) and one node worker per node, reading that node's kubelet root, as the
    DaemonSet would.  For tests and the demo's second cluster."""
    from dataclasses import replace

    from workers import run as worker_run

    assert ctx.kubeconfig, "in-process workers need the cluster's kubeconfig"
    with ThreadPoolExecutor(worker_run.ACTIVITY_THREADS) as executor:
        async with AsyncExitStack() as stack:
            if control:
                await stack.enter_async_context(worker_run.control_worker(client, ctx, executor))
            for node, root in node_kubelet_roots(Path(ctx.kubeconfig)).items():
                node_ctx = replace(ctx, node_name=node, kubelet_root_override=root)
                await stack.enter_async_context(worker_run.node_worker(client, node_ctx, node, executor))
            yield
