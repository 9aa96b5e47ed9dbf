"""Benchmark: 200 backups through the Kubernetes-native door against the same 200 through the CLI.

Baseline, measured in the same run: 200 backup jobs started the way ``backupctl backup create``
starts them (each job's workflow still makes and updates its object).  Ours: 200 ApplicationBackup
objects in one ``kubectl apply``, started by a real ``backupctl controller`` process, until every
object says Completed.  Both through a real Temporal dev server, the product's control worker and a
real kube-apiserver; each backup is of one small namespace (a few ConfigMaps, no volume data).
API requests per job come from the API server's own counter (``apiserver_request_total``).

    .venv/bin/python bench/controller.py [--jobs 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:1] = [str(ROOT)]

import yaml  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from activities import context  # noqa: E402
from activities.search_attributes import dev_server_flags  # noqa: E402
from backupctl import jobctl  # noqa: E402
from kube import job_objects  # noqa: E402
from kube.rest import Kube  # noqa: E402
from localdev.kube.build import kubectl  # noqa: E402
from localdev.kube.controlplane import LocalCluster  # noqa: E402
from localdev.temporal_server import temporal_cli  # noqa: E402
from schemas import resources  # noqa: E402
from schemas.settings import SettingsProvider  # noqa: E402
from schemas.specs import BackupSpec, JobKind  # noqa: E402
from schemas.status import JobStatus  # noqa: E402
from workers import run as worker_run  # noqa: E402
from workflows.backup import BackupWorkflow  # noqa: E402

APP = "bench-app"
HOME = "backup-center"
# Enough job slots that the door, not the slot limit, is what is measured.
SETTINGS = f"cluster_id: bench\ntask_queue_prefix: bctl\nproduct_namespace: {HOME}\nbackup_max_workers: 50\n"


def requests_total(kube: Kube) -> float:
    """Every request the API server served so far (its metrics are text; Kube keeps it as the message)."""
    body = str(kube.request("GET", "/metrics")["message"])
    counts = re.finditer(r"^apiserver_request_total\{[^}]*\} (\S+)$", body, re.M)
    return sum(float(m.group(1)) for m in counts)


def spec(name: str) -> BackupSpec:
    return BackupSpec(name=name, vault="bench", include_namespaces=[APP], volume_data=False)


async def through_cli(env: WorkflowEnvironment, settings: object, jobs: int) -> float:
    started = time.monotonic()
    handles = await asyncio.gather(
        *(
            jobctl.start_job(env.client, settings, "backup", f"cli-{i}", BackupWorkflow.run, spec(f"cli-{i}"),  # type: ignore[arg-type]
                             vault="bench", summary="bench")
            for i in range(jobs)
        )
    )
    results: list[JobStatus] = await asyncio.gather(*(h.result() for h in handles))
    seconds = time.monotonic() - started
    bad = [r.name for r in results if r.phase.value != "Completed"]
    assert not bad, f"CLI jobs not Completed: {bad[:5]}"
    return seconds


def through_objects(kube: Kube, kubeconfig: Path, jobs: int, timeout: float = 900) -> tuple[float, int]:
    """Seconds until every object is Completed, and the lists this benchmark made to find out."""
    docs = [
        {"apiVersion": resources.API_VERSION, "kind": "ApplicationBackup",
         "metadata": {"name": f"crd-{i}", "namespace": HOME}, "spec": resources.object_spec(spec(f"crd-{i}"))}
        for i in range(jobs)
    ]
    started = time.monotonic()
    subprocess.run([kubectl(), "--kubeconfig", str(kubeconfig), "apply", "-f", "-"],
                   input=yaml.safe_dump_all(docs), text=True, check=True, capture_output=True)
    path = job_objects.object_path(JobKind.backup, HOME)
    polls = 0
    while time.monotonic() - started < timeout:
        items, _ = kube.list(path)
        polls += 1
        mine = [o for o in items if o["metadata"]["name"].startswith("crd-")]
        phases = [(o.get("status") or {}).get("phase") for o in mine]
        if len(phases) == jobs and all(p in ("Completed", "PartiallyFailed", "Failed") for p in phases):
            assert all(p == "Completed" for p in phases), f"objects not Completed: {set(phases)}"
            return time.monotonic() - started, polls
        time.sleep(0.5)
    raise TimeoutError("the objects did not all complete")


async def run(jobs: int) -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-controller-"))
    with LocalCluster() as cluster:
        kube = Kube(cluster.api_client())
        kube.create("/api/v1/namespaces", {"metadata": {"name": APP}}, exist_ok=True)
        kube.create("/api/v1/namespaces", {"metadata": {"name": HOME}}, exist_ok=True)
        for i in range(5):
            config = {"metadata": {"name": f"c{i}"}, "data": {"k": "v"}}
            kube.create(f"/api/v1/namespaces/{APP}/configmaps", config)
        job_objects.install_crds(kube, list(resources.crds()))
        settings_path = work / "settings.yaml"
        settings_path.write_text(SETTINGS)
        ctx = context.WorkerContext(SettingsProvider.from_file(settings_path), state_dir=work,
                                    kubeconfig=str(cluster.kubeconfig_path))
        (work / "vault").mkdir()
        ctx.vaults().create({"name": "bench", "url": f"file://{work / 'vault'}"})
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(temporal_cli()), data_converter=pydantic_data_converter,
            dev_server_extra_args=[*dev_server_flags(), "--log-level", "error"], ui=False,
        )
        log = open(work / "controller.log", "wb")  # noqa: SIM115 - the process writes it until the end
        controller = subprocess.Popen(
            [str(Path(sys.executable).parent / "backupctl"), "controller"],
            env=dict(os.environ, BACKUPCENTER_SETTINGS=str(settings_path), BACKUPCENTER_STATE_DIR=str(work),
                     BACKUPCENTER_TEMPORAL_ADDRESS=env.client.service_client.config.target_host,
                     KUBECONFIG=str(cluster.kubeconfig_path), BACKUPCENTER_LOG_LEVEL="WARNING"),
            stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            with ThreadPoolExecutor(worker_run.ACTIVITY_THREADS) as executor:
                async with worker_run.control_worker(env.client, ctx, executor):
                    before = requests_total(kube)
                    cli = await through_cli(env, ctx.settings, jobs)
                    middle = requests_total(kube)
                    crd, polls = await asyncio.to_thread(through_objects, kube, cluster.kubeconfig_path, jobs)
                    after = requests_total(kube) - polls - 1  # the benchmark's own lists and metrics read
        finally:
            controller.terminate()
            controller.wait(30)
            log.close()
            await env.shutdown()
    print(f"jobs per door: {jobs}")
    print(f"cli seconds (start, until all Completed): {cli:.1f}")
    print(f"crd seconds (kubectl apply, until every object Completed): {crd:.1f}")
    print(f"cli jobs per second: {jobs / cli:.1f}")
    print(f"crd jobs per second: {jobs / crd:.1f}")
    print(f"api requests per job (cli, its object included): {(middle - before) / jobs:.1f}")
    print(f"api requests per job (crd, controller included): {(after - middle) / jobs:.1f}")
    print(f"crd ratio (ours/cli): {crd / cli:.2f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=200)
    return asyncio.run(run(parser.parse_args().jobs))


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)
