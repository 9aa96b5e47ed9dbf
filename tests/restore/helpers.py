"""Starting and following restore, backup and delete jobs in the restore tests."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from backupctl import jobctl
from kube.restore.explain import ItemOutcome
from kube.restore.records import RestoreFolder
from schemas.specs import BackupSpec, DeleteSpec, RestoreSpec
from schemas.status import JobPhase, JobStatus
from tests.product_fixtures import Product
from workflows.backup import BackupWorkflow
from workflows.delete import DeleteWorkflow
from workflows.restore import RestoreWorkflow


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def backup(product: Product, namespace: str, *, name: str | None = None, **fields: Any) -> str:
    name = name or unique("b")
    spec = BackupSpec(name=name, vault=product.vault, include_namespaces=[namespace], **fields)
    await jobctl.start_job(product.client, product.settings, "backup", name, BackupWorkflow.run, spec,
                           vault=spec.vault, summary=f"test backup {name}")
    status = await finished(product, "backup", name, 180)
    assert status.phase is JobPhase.completed, status.error
    return name


async def start_restore(product: Product, backup_name: str, **fields: Any) -> tuple[str, Any]:
    name = fields.pop("name", None) or unique("r")
    spec = RestoreSpec(name=name, backup=backup_name, vault=product.vault, **fields)
    handle = await jobctl.start_job(product.client, product.settings, "restore", name, RestoreWorkflow.run,
                                    spec, vault=spec.vault, summary=f"test restore {name}")
    return name, handle


async def restore(product: Product, backup_name: str, *, timeout: float = 300, **fields: Any) -> JobStatus:
    name, _ = await start_restore(product, backup_name, **fields)
    return await finished(product, "restore", name, timeout)


async def finished(product: Product, kind: str, name: str, timeout: float) -> JobStatus:
    """The job's final status; on timeout, fail showing where it stands."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status = await jobctl.job_status(product.client, kind, name)
        if status.phase.finished:
            return status
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{kind} {name} still {status.phase.value} after {timeout}s:\n"
                                 f"{status.render_table()}")
        await asyncio.sleep(0.3)


async def delete(product: Product, kind: str, target: str, **fields: Any) -> JobStatus:
    name = unique(f"{kind}-{target}")[:63]
    spec = DeleteSpec(name=name, target_kind=kind, target=target, **fields)
    await jobctl.start_job(product.client, product.settings, "delete", name, DeleteWorkflow.run, spec,
                           summary=f"test delete {kind} {target}")
    return await finished(product, "delete", name, 180)


async def wait_phase(product: Product, kind: str, name: str, phase: JobPhase, timeout: float = 90
                     ) -> JobStatus:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status = await jobctl.job_status(product.client, kind, name)
        if status.phase is phase:
            return status
        assert not status.phase.finished, f"{kind} ended {status.phase}: {status.error}"
        assert asyncio.get_running_loop().time() < deadline, f"still {status.phase} at {status.current_step}"
        await asyncio.sleep(0.2)


def outcomes(product: Product, restore_name: str) -> list[ItemOutcome]:
    store = product.ctx.vaults().store(product.vault)
    return list(RestoreFolder.of(store, product.settings.cluster_id, restore_name).read_outcomes())


def by_name(items: list[ItemOutcome]) -> dict[tuple[str, str], ItemOutcome]:
    return {(o.kind, o.name): o for o in items}
