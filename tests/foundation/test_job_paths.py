"""The job workflows' own paths on the time-skipping server, every activity a stub registered under
the real name (tests/foundation/job_stubs.py): an operator's retry, skip and cancel, a final error,
cleanup on cancel and failure, and the slot released however the job ends."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from schemas.specs import BackupSpec, RestoreSpec
from schemas.status import JobPhase, JobStatus, StepState
from tests.foundation import job_stubs as stubs
from workflows.backup import STEP_EXPORT, STEP_VALIDATE, BackupWorkflow
from workflows.restore import STEP_CONFIG, RestoreWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def queue(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[str]:
    name = f"paths-{uuid.uuid4()}"
    async with Worker(
        time_skipping_env.client,
        task_queue=name,
        workflows=[BackupWorkflow, RestoreWorkflow],
        activities=stubs.STUBS,
    ):
        yield name


async def _start(env: WorkflowEnvironment, queue: str, kind: str) -> WorkflowHandle[Any, JobStatus]:
    name = f"j-{uuid.uuid4().hex[:8]}"
    if kind == "backup":
        spec: Any = BackupSpec(name=name, vault="main", include_namespaces=["app"], volume_data=False)
        run: Any = BackupWorkflow.run
    else:
        spec = RestoreSpec(name=name, vault="main", backup="b1")
        run = RestoreWorkflow.run
    return await env.client.start_workflow(run, spec, id=f"{kind}-{name}", task_queue=queue)


async def _waiting(handle: WorkflowHandle[Any, JobStatus], step: str) -> JobStatus:
    for _ in range(200):
        status = await handle.query("status", result_type=JobStatus)
        if status.phase is JobPhase.waiting_for_operator:
            assert status.current_step == step, status.current_step
            return status
        assert not status.phase.finished, status
        await asyncio.sleep(0.05)
    raise AssertionError(f"never waited for an operator at {step}")


def _slot_released(holder: str) -> bool:
    return [args[1] for args in stubs.called("release_slot")] == [holder]


async def test_backup_retry_after_a_failed_step_completes(
    time_skipping_env: WorkflowEnvironment, queue: str
) -> None:
    stubs.reset(export_resources=("retryable", 1))
    handle = await _start(time_skipping_env, queue, "backup")
    waiting = await _waiting(handle, STEP_EXPORT)
    assert waiting.error is not None and waiting.error.code == "VaultUnavailable"
    await handle.signal("retry")
    result = await handle.result()
    assert result.phase is JobPhase.completed
    assert result.step(STEP_EXPORT).attempts == 2 and result.step(STEP_EXPORT).state is StepState.succeeded
    assert len(stubs.called("export_resources")) == 2 and len(stubs.called("commit_backup")) == 1
    assert stubs.called("cleanup_backup") == []
    assert _slot_released(handle.id)


async def test_backup_canceled_while_waiting_cleans_up_and_frees_its_slot(
    time_skipping_env: WorkflowEnvironment, queue: str
) -> None:
    stubs.reset(validate_backup=("retryable", 1))
    handle = await _start(time_skipping_env, queue, "backup")
    await _waiting(handle, STEP_VALIDATE)
    await handle.signal("cancel")
    result = await handle.result()
    assert result.phase is JobPhase.canceled
    assert result.step(STEP_VALIDATE).state is StepState.canceled
    [(cleanup,)] = stubs.called("cleanup_backup")
    assert cleanup["canceled"] is True and cleanup["error_code"] is None
    assert stubs.called("export_resources") == []
    assert _slot_released(handle.id)


async def test_backup_final_error_fails_at_once_with_cleanup(
    time_skipping_env: WorkflowEnvironment, queue: str
) -> None:
    stubs.reset(validate_backup=("final", 1))
    handle = await _start(time_skipping_env, queue, "backup")
    result = await handle.result()
    assert result.phase is JobPhase.failed and result.error is not None and result.error.code == "InvalidSpec"
    assert result.step(STEP_VALIDATE).state is StepState.failed
    [(cleanup,)] = stubs.called("cleanup_backup")
    assert cleanup["canceled"] is False and cleanup["error_code"] == "InvalidSpec"
    assert _slot_released(handle.id)


async def test_restore_skipped_phase_ends_partially_failed(
    time_skipping_env: WorkflowEnvironment, queue: str
) -> None:
    stubs.reset(apply_group=("retryable", 1))
    handle = await _start(time_skipping_env, queue, "restore")
    await _waiting(handle, STEP_CONFIG)
    await handle.signal("skip")
    result = await handle.result()
    assert result.phase is JobPhase.partially_failed
    assert result.step(STEP_CONFIG).state is StepState.skipped
    [(skip,)] = stubs.called("skip_group")
    assert skip["error"]["code"] == "VaultUnavailable"
    # The phases with nothing in the backup say so; the restore still finished.
    assert len(stubs.called("finish_restore")) == 1 and stubs.called("cleanup_restore") == []
    assert _slot_released(handle.id)


async def test_restore_canceled_removes_its_temporaries(
    time_skipping_env: WorkflowEnvironment, queue: str
) -> None:
    stubs.reset(apply_group=("retryable", 1))
    handle = await _start(time_skipping_env, queue, "restore")
    await _waiting(handle, STEP_CONFIG)
    await handle.signal("cancel")
    result = await handle.result()
    assert result.phase is JobPhase.canceled
    assert len(stubs.called("cleanup_restore")) == 1 and stubs.called("finish_restore") == []
    assert any("stay in the cluster" in w.message for w in result.warnings)
    assert _slot_released(handle.id)
