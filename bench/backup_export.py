"""Benchmark: backing up 10,000 ConfigMaps, 1,000 Secrets and 500 Deployments from the local cluster.

Baseline, measured in the same run: `kubectl get configmaps,secrets,deployments -A -o json` of the
same objects.  Ours is a whole backup workflow (validate, vault check, discovery of every served
version, export to a file:// vault, commit) through a real Temporal dev server and worker.

    .venv/bin/python bench/backup_export.py
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# Run as a script: the repository root must win over bench/ on the import path.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:1] = [str(ROOT)]

from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from activities import context  # noqa: E402
from activities.search_attributes import dev_server_flags  # noqa: E402
from backupctl import jobctl  # noqa: E402
from kube.rest import Kube  # noqa: E402
from localdev.kube import bulk  # noqa: E402
from localdev.kube.controlplane import LocalCluster  # noqa: E402
from localdev.temporal_server import temporal_cli  # noqa: E402
from schemas.settings import SettingsProvider  # noqa: E402
from schemas.specs import BackupSpec  # noqa: E402
from schemas.status import JobPhase, JobStatus  # noqa: E402
from workers import run as worker_run  # noqa: E402
from workflows.backup import BackupWorkflow  # noqa: E402

CONFIGMAPS, SECRETS, DEPLOYMENTS = 10_000, 1_000, 500
NAMESPACES = ["bench-a", "bench-b"]


def seed(kube: Kube) -> float:
    started = time.monotonic()
    for ns in NAMESPACES:
        kube.create("/api/v1/namespaces", {"metadata": {"name": ns}}, exist_ok=True)
    objects = []
    for i, ns in enumerate(NAMESPACES):
        share = len(NAMESPACES)
        objects += list(bulk.configmaps(ns, CONFIGMAPS // share, value_bytes=512, prefix=f"cm{i}"))
        objects += list(bulk.secrets(ns, SECRETS // share, prefix=f"s{i}"))
        objects += list(bulk.deployments(ns, DEPLOYMENTS // share, prefix=f"d{i}"))
    bulk.create_many(kube, bulk.path_of, objects, threads=16)
    return time.monotonic() - started


def kubectl_seconds(kubeconfig: Path, out: Path) -> float:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise SystemExit("kubectl is not installed: the baseline cannot run")
    started = time.monotonic()
    with open(out, "wb") as sink:
        subprocess.run(
            [
                kubectl,
                "--kubeconfig",
                str(kubeconfig),
                "get",
                "configmaps,secrets,deployments",
                "-A",
                "-o",
                "json",
            ],
            stdout=sink,
            check=True,
        )
    return time.monotonic() - started


async def ours(cluster: LocalCluster, work: Path) -> tuple[float, int, JobStatus]:
    settings_path = work / "settings.yaml"
    settings_path.write_text("cluster_id: bench\ntask_queue_prefix: bench\n")
    ctx = context.WorkerContext(
        SettingsProvider.from_file(settings_path), state_dir=work, kubeconfig=str(cluster.kubeconfig_path)
    )
    (work / "vault").mkdir()
    ctx.vaults().create({"name": "bench", "url": f"file://{work / 'vault'}"})
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_cli()),
        data_converter=pydantic_data_converter,
        dev_server_extra_args=[*dev_server_flags(), "--log-level", "error"],
        ui=False,
    )
    try:
        with ThreadPoolExecutor(worker_run.ACTIVITY_THREADS) as executor:
            async with worker_run.control_worker(env.client, ctx, executor):
                spec = BackupSpec(
                    name="bench", vault="bench", include_namespaces=NAMESPACES, volume_data=False
                )
                started = time.monotonic()
                handle = await jobctl.start_job(
                    env.client,
                    ctx.settings,
                    "backup",
                    "bench",
                    BackupWorkflow.run,
                    spec,
                    vault="bench",
                    summary="benchmark",
                )
                status: JobStatus = await handle.result()
                seconds = time.monotonic() - started
                history = await handle.fetch_history()
                history_bytes = len(history.to_json().encode())
    finally:
        await env.shutdown()
    return seconds, history_bytes, status


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    try:
        with LocalCluster() as cluster:
            kube = Kube(cluster.api_client())
            print(f"seed seconds: {seed(kube):.1f}")
            baseline = kubectl_seconds(cluster.kubeconfig_path, work / "kubectl.json")
            seconds, history_bytes, status = asyncio.run(ours(cluster, work))
            baseline = min(baseline, kubectl_seconds(cluster.kubeconfig_path, work / "kubectl.json"))
        if status.phase is not JobPhase.completed:
            print(f"backup ended {status.phase}: {status.error}")
            return 1
        objects = int(status.summary.get("objects", 0))
        print(f"objects backed up: {objects}")
        print(f"kubectl get seconds: {baseline:.2f}")
        print(f"backup workflow seconds: {seconds:.2f}")
        print(f"backup objects per second: {objects / seconds:.0f}")
        print(f"workflow history bytes (json): {history_bytes}")
        print(f"export ratio (ours/kubectl): {seconds / baseline:.2f}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)
