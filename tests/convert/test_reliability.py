"""The control worker killed with SIGKILL in the middle of a conversion: the conversion completes on
the restarted worker with one temporary PVC ever created, one snapshot, and no temporaries left."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from backupctl import jobctl
from localdev.devenv import workers_in_process
from schemas.convert import ConvertState
from schemas.specs import ConvertSpec
from schemas.status import JobPhase
from tests.convert.test_convert import DISK, NAS, nas_backup, record, snapshots_of, temporaries
from tests.product_fixtures import Product, worker_context
from tests.restore.helpers import unique
from tests.worker_process import WorkerProcess, control_process
from workflows.convert import ConvertWorkflow

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture
def worker_process(product: Product, temporal_env: Any, tmp_path: Path) -> Iterator[WorkerProcess]:
    worker = control_process(product, temporal_env.client.service_client.config.target_host, tmp_path)
    worker.start()
    yield worker
    worker.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def node_workers(
    product: Product, worker_process: WorkerProcess, kube_cluster: Any
) -> AsyncIterator[None]:
    """Node workers on the killed worker's task-queue prefix (only the control worker is killed)."""
    ctx = worker_context(worker_process.settings_path, product.ctx.state_dir, kube_cluster.kubeconfig_path)
    async with workers_in_process(product.client, ctx, control=False):
        yield


async def test_worker_killed_while_the_tmp_pvc_binds(
    product: Product, kube_agent: Any, kube_namespace: str, worker_process: WorkerProcess, node_workers: None
) -> None:
    backup_name = await nas_backup(product, kube_agent, kube_namespace)
    name = unique("ck")
    spec = ConvertSpec(
        name=name,
        backup=backup_name,
        vault=product.vault,
        storage_class_mapping={NAS: DISK},
        convert_to_access_modes=["ReadWriteOnce"],
    )
    kube_agent.faults.never_bind(DISK)
    try:
        await jobctl.start_job(
            product.client,
            worker_process.settings,
            "convert",
            name,
            ConvertWorkflow.run,
            spec,
            vault=spec.vault,
            summary="kill test",
        )
        deadline = asyncio.get_running_loop().time() + 60
        while len(temporaries(product, name)) < 2:  # the tmp PVC and its pod
            assert asyncio.get_running_loop().time() < deadline, "the tmp PVC and pod never appeared"
            await asyncio.sleep(0.1)
        first = {
            o["metadata"]["name"]: o["metadata"]["uid"]
            for o in product.kube.list(
                "/api/v1/persistentvolumeclaims", labelSelector=f"backupcenter.io/convert-temporary={name}"
            )[0]
        }
        worker_process.kill9()
    finally:
        kube_agent.faults.never_bind(DISK, enabled=False)
    worker_process.start()
    # Until it ends, any tmp PVC of the conversion must be the one the killed attempt created.
    selector = f"backupcenter.io/convert-temporary={name}"
    seen: set[str] = set()
    deadline = asyncio.get_running_loop().time() + 180
    while not (status := await jobctl.job_status(product.client, "convert", name)).phase.finished:
        seen |= {
            o["metadata"]["uid"]
            for o in product.kube.list("/api/v1/persistentvolumeclaims", labelSelector=selector)[0]
        }
        assert asyncio.get_running_loop().time() < deadline, status.render_table()
        await asyncio.sleep(0.1)
    assert status.phase is JobPhase.completed, (status.error, status.item_errors)
    [temp] = first
    assert seen <= {first[temp]}, "the retried activity created a second tmp PVC"
    [snap] = snapshots_of(product, name)  # one snapshot, taken over from the namespace
    assert snap["spec"]["volumeSnapshotRef"]["name"] == temp
    assert temporaries(product, name) == []
    saved = record(product, name)
    assert saved.state is ConvertState.committed and len(saved.volumes) == 1
