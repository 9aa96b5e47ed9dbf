"""The shared step model on a real Temporal server: operator retry, skip, cancel and deadline."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import pytest_asyncio
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import search_attributes as sa
from schemas.status import JobPhase, JobStatus, StepState
from tests.foundation import step_workflow
from tests.foundation.step_workflow import StepDemoWorkflow, cleanup, fragile_step

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def worker(temporal_env: WorkflowEnvironment) -> AsyncIterator[str]:
    queue = f"steps-{uuid.uuid4()}"
    with ThreadPoolExecutor(4) as executor:
        async with Worker(
            temporal_env.client,
            task_queue=queue,
            workflows=[StepDemoWorkflow],
            activities=[fragile_step, cleanup],
            activity_executor=executor,
        ):
            yield queue


async def _wait_phase(handle: WorkflowHandle, phase: JobPhase, timeout: float = 20) -> JobStatus:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status: JobStatus = await handle.query(StepDemoWorkflow.status)
        if status.phase is phase:
            return status
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"phase {status.phase}, wanted {phase}")
        await asyncio.sleep(0.1)


async def test_failed_step_waits_for_operator_then_retry_completes(
    temporal_env: WorkflowEnvironment, worker: str
) -> None:
    step_workflow.FAILURES_LEFT.update({"prepare": 2})  # both automatic attempts fail
    cluster = f"c{uuid.uuid4().hex[:8]}"
    handle = await temporal_env.client.start_workflow(
        StepDemoWorkflow.run,
        ["a"],
        id=f"steps-{uuid.uuid4()}",
        task_queue=worker,
        search_attributes=sa.initial("backup", vault="v", cluster=cluster),
    )
    waiting = await _wait_phase(handle, JobPhase.waiting_for_operator)
    step = waiting.step("prepare")
    assert step.state is StepState.waiting_for_operator and step.attempts == 1
    assert waiting.error is not None and waiting.error.code == "SnapshotNotReady"
    assert waiting.error.fixes and "snap-prepare" in waiting.error.message

    # Operators find stuck jobs in the Web UI with a visibility query.
    query = f"BackupPhase = 'WaitingForOperator' AND BackupCluster = '{cluster}'"
    for _ in range(100):
        found = [wf.id async for wf in temporal_env.client.list_workflows(query)]
        if found:
            break
        await asyncio.sleep(0.1)
    assert found == [handle.id]
    desc = await handle.describe()
    assert desc.typed_search_attributes.get(sa.STEP) == "prepare"
    # Where a person looks first in the Web UI: the operator wait is a named timer in the history,
    # and the current details open with the phase, the step and the commands that steer the job.
    converter = temporal_env.client.data_converter
    summaries = [
        await converter.decode([e.user_metadata.summary], [str])
        async for e in handle.fetch_history_events()
        if e.HasField("timer_started_event_attributes") and e.user_metadata.HasField("summary")
    ]
    assert [s[0] for s in summaries] == [
        "operator decision for step 'prepare' (SnapshotNotReady): backupctl backup cancel|retry demo"
    ], summaries
    metadata = await handle.query("__temporal_workflow_metadata")
    details = str(getattr(metadata, "current_details", metadata))
    assert details.startswith("**WaitingForOperator** at step 'prepare'"), details
    assert "backupctl backup retry|skip|cancel demo" in details

    await handle.signal(StepDemoWorkflow.skip)  # not a per-item step: ignored
    await asyncio.sleep(0.3)
    assert (await _wait_phase(handle, JobPhase.waiting_for_operator)).step("prepare").attempts == 1

    await handle.signal(StepDemoWorkflow.retry)
    result = await handle.result()
    assert result.phase is JobPhase.completed
    assert result.step("prepare").attempts == 2
    assert result.error is None


async def test_skip_marks_the_item_failed_and_ends_partially_failed(
    temporal_env: WorkflowEnvironment, worker: str
) -> None:
    step_workflow.FAILURES_LEFT.update({"bad": 10})
    handle = await temporal_env.client.start_workflow(
        StepDemoWorkflow.run, ["good", "bad", "also-good"], id=f"steps-{uuid.uuid4()}", task_queue=worker
    )
    await _wait_phase(handle, JobPhase.waiting_for_operator)
    await handle.signal(StepDemoWorkflow.skip)
    result = await handle.result()
    assert result.phase is JobPhase.partially_failed
    assert result.step("volume bad").state is StepState.skipped
    assert result.step("volume also-good").state is StepState.succeeded
    assert [e.item for e in result.item_errors] == ["volume bad"]
    assert result.item_errors[0].code == "SnapshotNotReady"


async def test_cancel_while_waiting_cleans_up(temporal_env: WorkflowEnvironment, worker: str) -> None:
    step_workflow.FAILURES_LEFT.update({"prepare": 10})
    step_workflow.CLEANED.clear()
    handle = await temporal_env.client.start_workflow(
        StepDemoWorkflow.run, ["a"], id=f"steps-{uuid.uuid4()}", task_queue=worker
    )
    await _wait_phase(handle, JobPhase.waiting_for_operator)
    await handle.signal(StepDemoWorkflow.cancel)
    result = await handle.result()
    assert result.phase is JobPhase.canceled
    assert result.step("prepare").state is StepState.canceled
    assert result.step("volume a").state is StepState.canceled
    assert step_workflow.CLEANED == ["demo"]
    step_workflow.FAILURES_LEFT.clear()


async def test_operator_deadline_fails_the_job(time_skipping_env: WorkflowEnvironment) -> None:
    step_workflow.FAILURES_LEFT.update({"prepare": 10})
    queue = f"steps-{uuid.uuid4()}"
    with ThreadPoolExecutor(4) as executor:
        async with Worker(
            time_skipping_env.client,
            task_queue=queue,
            workflows=[StepDemoWorkflow],
            activities=[fragile_step, cleanup],
            activity_executor=executor,
        ):
            result = await time_skipping_env.client.execute_workflow(
                StepDemoWorkflow.run, ["a"], id=f"steps-{uuid.uuid4()}", task_queue=queue
            )
    step_workflow.FAILURES_LEFT.clear()
    assert result.phase is JobPhase.failed
    assert result.error is not None and result.error.code == "OperatorTimeout"
    assert "no operator action within 0:30:00 after step prepare failed" in result.error.message
