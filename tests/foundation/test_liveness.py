"""Every activity shows that its worker is alive (workers/liveness.py), on a real Temporal server:
activities started without a heartbeat timeout get the worker's, none gets a longer one, a quiet
activity outlives a heartbeat timeout far shorter than its run, and the keep-alive never wipes the
progress a retry resumes from."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.foundation.liveness_workflow import LivenessWorkflow, quiet, resumable
from workers.liveness import Liveness

pytestmark = pytest.mark.asyncio(loop_scope="session")

TIMEOUT = timedelta(seconds=1)


@pytest_asyncio.fixture(loop_scope="session")
async def queue(temporal_env: WorkflowEnvironment) -> AsyncIterator[str]:
    name = f"liveness-{uuid.uuid4()}"
    with ThreadPoolExecutor(4) as executor:
        async with Worker(
            temporal_env.client,
            task_queue=name,
            workflows=[LivenessWorkflow],
            activities=[quiet, resumable],
            activity_executor=executor,
            max_heartbeat_throttle_interval=timedelta(milliseconds=200),
            default_heartbeat_throttle_interval=timedelta(milliseconds=200),
            interceptors=[Liveness(TIMEOUT)],
        ):
            yield name


async def _run(env: WorkflowEnvironment, queue: str, *args: Any) -> tuple[Any, WorkflowHandle[Any, Any]]:
    handle = await env.client.start_workflow(
        LivenessWorkflow.run, args=list(args), id=f"liveness-{uuid.uuid4()}", task_queue=queue
    )
    return await handle.result(), handle


async def _scheduled_heartbeat_timeouts(handle: WorkflowHandle[Any, Any]) -> list[float]:
    return [
        e.activity_task_scheduled_event_attributes.heartbeat_timeout.ToTimedelta().total_seconds()
        async for e in handle.fetch_history_events()
        if e.HasField("activity_task_scheduled_event_attributes")
    ]


async def test_quiet_activity_gets_a_heartbeat_timeout_and_outlives_it(
    temporal_env: WorkflowEnvironment, queue: str
) -> None:
    # Three times the heartbeat timeout without a heartbeat of its own: the first attempt completes.
    attempt, handle = await _run(temporal_env, queue, "quiet", 3.0, None)
    assert attempt == 1
    assert await _scheduled_heartbeat_timeouts(handle) == [1.0]


async def test_no_activity_gets_a_longer_heartbeat_timeout(
    temporal_env: WorkflowEnvironment, queue: str
) -> None:
    _, handle = await _run(temporal_env, queue, "quiet", 0.1, 60.0)
    assert await _scheduled_heartbeat_timeouts(handle) == [1.0]


async def test_keep_alive_repeats_the_progress_a_retry_resumes_from(
    temporal_env: WorkflowEnvironment, queue: str
) -> None:
    # Each failing attempt runs past several keep-alives; attempt 2 reports nothing itself. The third
    # still sees attempt 1's progress: the keep-alive repeated it instead of sending empty details.
    details, _ = await _run(temporal_env, queue, "resumable", 2.5, None)
    assert details == [{"files_done": 7}]
