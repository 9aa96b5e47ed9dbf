"""backup_max_workers bounds concurrent backups, and a changed limit applies without a restart."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from schemas.specs import BackupSpec
from schemas.status import JobPhase, JobStatus
from tests.backup.test_backup_workflow import seed, start, wait_phase
from tests.product_fixtures import Product
from workflows.backup import BackupWorkflow

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]


async def test_limit_queues_jobs_and_a_raised_limit_admits_them(
    product: Product, kube_agent: Any, kube_namespace: str
) -> None:
    original = product.settings_path.read_text()
    product.settings_path.write_text(original + "backup_max_workers: 1\n")
    held_ns = f"{kube_namespace}-h"
    product.kube.create("/api/v1/namespaces", {"metadata": {"name": held_ns}})
    seed(product, kube_agent, held_ns, configmaps=1)
    kube_agent.faults.snapshots_never_ready(True)
    try:
        # A holds the only slot while it waits for an operator (its snapshot never gets ready).
        holder = f"s-{uuid.uuid4().hex[:8]}"
        held = await start(product, BackupSpec(name=holder, vault="main", include_namespaces=[held_ns]))
        await wait_phase(product, holder, JobPhase.waiting_for_operator, timeout=90)

        queued = f"s-{uuid.uuid4().hex[:8]}"
        status: JobStatus
        waiting = await start(
            product,
            BackupSpec(name=queued, vault="main", include_namespaces=[kube_namespace], volume_data=False),
        )
        for _ in range(100):
            status = await waiting.query(BackupWorkflow.status)
            if status.current_step == "waiting for a slot":
                break
            await asyncio.sleep(0.1)
        for _ in range(30):  # three seconds more: it must not start
            status = await waiting.query(BackupWorkflow.status)
            assert status.current_step == "waiting for a slot", status.current_step
            await asyncio.sleep(0.1)

        product.settings_path.write_text(original + "backup_max_workers: 2\n")
        result: JobStatus = await asyncio.wait_for(waiting.result(), timeout=60)
        assert result.phase is JobPhase.completed

        await held.signal(BackupWorkflow.cancel)
        assert (await held.result()).phase is JobPhase.canceled
    finally:
        kube_agent.faults.snapshots_never_ready(False)
        product.settings_path.write_text(original)
        product.kube.delete(f"/api/v1/namespaces/{held_ns}")
