"""A control worker killed with SIGKILL mid-export and mid-snapshot-wait: the backup still completes,
nothing is duplicated in the vault and no snapshot leaks.  The worker is a real `backupctl worker
control` process; the Temporal server and the cluster are the session's."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle

from backupctl import jobctl
from kube.export import read_bundle, read_index
from localdev.kube import bulk
from schemas.specs import BackupSpec
from schemas.status import JobPhase, JobStatus
from tests.backup.test_backup_workflow import owned_of, seed, snapshots_of
from tests.product_fixtures import Product
from tests.worker_process import WorkerProcess, control_process
from vault import catalog
from workflows.backup import BackupWorkflow

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture
def worker_process(product: Product, temporal_env: Any, tmp_path: Path) -> Iterator[WorkerProcess]:
    worker = control_process(product, temporal_env.client.service_client.config.target_host, tmp_path)
    worker.start()
    yield worker
    worker.stop()


async def _wait_pending(
    handle: WorkflowHandle[Any, Any], activity_name: str, *, heartbeats: bool, timeout: float = 60
) -> None:
    """Until the named activity runs (and has heartbeated, when asked)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        desc = await handle.describe()
        for pending in desc.raw_description.pending_activities:
            if pending.activity_type.name == activity_name and (
                not heartbeats or pending.HasField("last_heartbeat_time")
            ):
                return
        assert asyncio.get_running_loop().time() < deadline, f"{activity_name} never started"
        await asyncio.sleep(0.05)


async def _start_on(worker: WorkerProcess, product: Product, spec: BackupSpec) -> WorkflowHandle[Any, Any]:
    """Start a backup on the worker process's own task queue."""
    return await jobctl.start_job(
        product.client,
        worker.settings,
        "backup",
        spec.name,
        BackupWorkflow.run,
        spec,
        vault=spec.vault,
        summary="kill test",
    )


async def _completed_by(handle: WorkflowHandle[Any, Any], activity_name: str) -> str:
    """Identity (pid@host) of the worker that completed the named activity."""
    names: dict[int, str] = {}
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            names[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        if event.HasField("activity_task_completed_event_attributes"):
            done = event.activity_task_completed_event_attributes
            if names.get(done.scheduled_event_id) == activity_name:
                return str(done.identity)
    raise AssertionError(f"{activity_name} never completed")


async def test_worker_killed_mid_export_resumes_without_duplicates(
    product: Product, worker_process: WorkerProcess, kube_namespace: str
) -> None:
    ns = kube_namespace
    bulk.create_many(product.kube, bulk.path_of, bulk.configmaps(ns, 1500, value_bytes=512))
    name = f"k-{uuid.uuid4().hex[:8]}"
    spec = BackupSpec(name=name, vault="main", include_namespaces=[ns], volume_data=False)
    handle = await _start_on(worker_process, product, spec)
    await _wait_pending(handle, "export_resources", heartbeats=True)
    worker_process.kill9()
    # The activity is still pending: the kill really happened mid-export.
    desc = await handle.describe()
    assert [p.activity_type.name for p in desc.raw_description.pending_activities] == ["export_resources"]
    worker_process.start()
    result: JobStatus = await handle.result()
    assert result.phase is JobPhase.completed, result.error
    # The retried attempt ran on the new worker.
    assert worker_process.proc is not None
    assert (await _completed_by(handle, "export_resources")).startswith(f"{worker_process.proc.pid}@")

    store = product.ctx.vaults().store("main")
    index = read_index(store, name)
    cms = next(b for b in index.bundles if b.plural == "configmaps")
    assert cms.count == 1501  # 1500 + kube-root-ca.crt, each once
    names = [o["metadata"]["name"] for o in read_bundle(store, cms.key)]
    assert len(names) == len(set(names)) == 1501
    keys = [e.key for e in store.list(catalog.backup_prefix(name)) if not isinstance(e, str)]
    assert len(keys) == len(set(keys))
    assert catalog.get_backup(store, name).state.value == "Committed"


async def test_worker_killed_during_snapshot_wait_leaks_nothing(
    product: Product, worker_process: WorkerProcess, kube_agent: Any, kube_namespace: str
) -> None:
    ns = kube_namespace
    seed(product, kube_agent, ns, configmaps=1)
    kube_agent.faults.snapshots_never_ready(True)
    try:
        name = f"k-{uuid.uuid4().hex[:8]}"
        spec = BackupSpec(name=name, vault="main", include_namespaces=[ns])
        handle = await _start_on(worker_process, product, spec)
        await _wait_pending(handle, "wait_snapshots_ready", heartbeats=True)
        worker_process.kill9()
        worker_process.start()
        await _wait_pending(handle, "wait_snapshots_ready", heartbeats=False)
    finally:
        kube_agent.faults.snapshots_never_ready(False)
    result: JobStatus = await handle.result()
    assert result.phase is JobPhase.completed, result.error
    assert worker_process.proc is not None
    assert (await _completed_by(handle, "wait_snapshots_ready")).startswith(f"{worker_process.proc.pid}@")
    # The retry found its snapshot and made no second; the backup took it over.
    assert snapshots_of(product, ns, name) == [] and len(owned_of(product, name)) == 1
