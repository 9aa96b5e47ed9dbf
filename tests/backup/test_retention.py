"""Retention: the sweep deletes this cluster's expired backups through ordinary delete requests,
and leaves unexpired ones alone."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.errors import BackupCenterError
from schemas.specs import BackupSpec
from schemas.status import JobPhase, JobStatus
from schemas.task_queues import control_queue
from tests.backup.test_backup_workflow import start
from tests.product_fixtures import Product
from vault import catalog
from workflows.retention import RetentionWorkflow, request_name

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]


async def test_sweep_deletes_expired_backups_only(product: Product, kube_namespace: str) -> None:
    short, long = f"r-{uuid.uuid4().hex[:8]}", f"r-{uuid.uuid4().hex[:8]}"
    for name, ttl in ((short, "1s"), (long, "30d")):
        spec = BackupSpec.model_validate(
            {
                "name": name,
                "vault": "main",
                "include_namespaces": [kube_namespace],
                "volume_data": False,
                "ttl": ttl,
            }
        )
        result: JobStatus = await (await start(product, spec)).result()
        assert result.phase is JobPhase.completed
    await asyncio.sleep(1.5)  # the short one is past its TTL now

    sweep = await product.client.start_workflow(
        RetentionWorkflow.run,
        timedelta(hours=1),
        id=f"retention-test-{uuid.uuid4().hex[:6]}",
        task_queue=control_queue(product.settings),
    )
    try:
        delete = product.client.get_workflow_handle(f"delete-{request_name(short)}", result_type=JobStatus)
        for _ in range(200):  # the sweep starts the delete request at once
            try:
                await delete.describe()
                break
            except Exception:
                await asyncio.sleep(0.1)
        deleted: JobStatus = await asyncio.wait_for(delete.result(), 120)
        assert deleted.phase is JobPhase.completed, deleted.error
    finally:
        await sweep.terminate("test over")
    store = product.ctx.vaults().store("main")
    with pytest.raises(BackupCenterError, match="not found"):
        catalog.get_backup(store, short)
    assert catalog.get_backup(store, long).state.value == "Committed"


async def test_the_control_worker_starts_the_retention_sweep(
    product: Product, temporal_env: Any, kube_namespace: str, tmp_path: Path
) -> None:
    """Deployed as `backupctl worker control`, the product deletes expired backups by itself: the
    worker starts its cluster's sweep (every retention_sweep_interval) at start."""
    from tests.backup.test_reliability import _start_on
    from tests.worker_process import control_process

    cluster = f"ret-{uuid.uuid4().hex[:6]}"
    target = temporal_env.client.service_client.config.target_host
    worker = control_process(
        product, target, tmp_path, cluster=cluster, extra="retention_sweep_interval: 1s\n"
    )
    worker.start()
    try:
        name = f"r-{uuid.uuid4().hex[:8]}"
        spec = BackupSpec.model_validate(
            {"name": name, "vault": "main", "include_namespaces": [kube_namespace], "volume_data": False,
             "ttl": "1s"}
        )
        result: JobStatus = await (await _start_on(worker, product, spec)).result()
        assert result.phase is JobPhase.completed, result.error
        sweep = await product.client.get_workflow_handle(f"retention-{cluster}").describe()
        assert sweep.status is not None and sweep.status.name == "RUNNING"
        store = product.ctx.vaults().store("main")
        deadline = asyncio.get_running_loop().time() + 90
        while name in {b.name for b in catalog.list_backups(store, include_incomplete=True)}:
            assert asyncio.get_running_loop().time() < deadline, "the expired backup was never deleted"
            await asyncio.sleep(0.5)
        deleted = await product.client.get_workflow_handle(
            f"delete-{request_name(name)}", result_type=JobStatus
        ).result()
        assert deleted.phase is JobPhase.completed, deleted.error
    finally:
        worker.stop()
        with contextlib.suppress(Exception):
            await product.client.get_workflow_handle(f"retention-{cluster}").terminate("test over")
