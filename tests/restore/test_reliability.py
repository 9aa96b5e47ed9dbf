"""A control worker killed with SIGKILL in the middle of creating objects: the restore completes on
the restarted worker, every object exists once, and none of them is reported as "exists" (the
retried activity recognises what the killed attempt created by the restore's label)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle

from backupctl import jobctl
from kube.restore.explain import ItemStatus
from localdev.kube import bulk
from schemas.specs import RestoreSpec
from schemas.status import JobPhase
from tests.product_fixtures import Product
from tests.restore.helpers import backup, finished, outcomes, unique
from tests.worker_process import WorkerProcess, control_process
from workflows.restore import RestoreWorkflow

pytestmark = pytest.mark.cluster

OBJECTS = 5000


@pytest.fixture
def worker_process(product: Product, temporal_env: Any, tmp_path: Path) -> Iterator[WorkerProcess]:
    worker = control_process(product, temporal_env.client.service_client.config.target_host, tmp_path)
    worker.start()
    yield worker
    worker.stop()


async def _applying(handle: WorkflowHandle[Any, Any], resource: str, timeout: float = 120) -> int:
    """Until apply_group has heartbeated progress on ``resource``; returns the objects done."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        desc = await handle.describe()
        for pending in desc.raw_description.pending_activities:
            payloads = pending.heartbeat_details.payloads
            if pending.activity_type.name == "apply_group" and payloads:
                progress = json.loads(payloads[0].data)
                if progress.get("resource") == resource and progress.get("objects", 0) > 0:
                    return int(progress["objects"])
        assert asyncio.get_running_loop().time() < deadline, f"never saw {resource} being restored"
        await asyncio.sleep(0.05)


async def test_worker_killed_mid_apply_resumes_without_duplicates(
    product: Product, worker_process: WorkerProcess, kube_namespace: str
) -> None:
    source, kube = kube_namespace, product.kube
    bulk.create_many(kube, bulk.path_of, bulk.configmaps(source, OBJECTS, value_bytes=64))
    backup_name = await backup(product, source, volume_data=False)
    target, name = f"{source}-k", unique("r")
    spec = RestoreSpec(name=name, backup=backup_name, vault="main", namespace_mapping={source: target})
    handle = await jobctl.start_job(product.client, worker_process.settings, "restore", name,
                                    RestoreWorkflow.run, spec, vault="main", summary="kill test")
    listed = f"/api/v1/namespaces/{target}/configmaps"
    try:
        await _applying(handle, "configmaps")
        worker_process.kill9()
        before = len(kube.list(listed, labelSelector="bulk=cm")[0])
        assert 0 < before < OBJECTS, f"the kill did not interrupt the phase ({before} created)"
        worker_process.start()
        status = await finished(product, "restore", name, 180)
        assert status.phase is JobPhase.completed, (status.error, status.item_errors)
        configmaps = [o for o in outcomes(product, name) if o.kind == "ConfigMap"]
        created = [o for o in configmaps if o.status is ItemStatus.created]
        assert len(created) == OBJECTS and len({o.name for o in created}) == OBJECTS
        assert [o.name for o in configmaps if o.status is not ItemStatus.created] == ["kube-root-ca.crt"]
        assert len(kube.list(listed, labelSelector="bulk=cm")[0]) == OBJECTS
    finally:
        kube.delete(f"/api/v1/namespaces/{target}")
