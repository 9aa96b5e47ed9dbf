"""The slots workflow loses no wakeup: a request that arrives while it checks its holders is granted
at once, not when the asker re-sends it or at the next check a minute later."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio
from temporalio import activity
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from schemas.slots import SlotRequest
from tests.backup.slot_holder import SlotHolderWorkflow
from workflows.slots import HOLDER_CHECK, JobSlotsWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Checks:
    """A stand-in for the holder check: while it runs, the next job's request arrives."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.slots = ""
        self.asker = ""
        self.calls = 0

    @activity.defn(name="running_workflows")
    async def running_workflows(self, workflow_ids: list[str]) -> list[str]:
        self.calls += 1
        if self.asker:
            request = SlotRequest(holder=self.asker, limit=2)
            await self.client.get_workflow_handle(self.slots).signal(JobSlotsWorkflow.request, request)
            self.asker = ""
        return list(workflow_ids)


@pytest_asyncio.fixture(loop_scope="session")
async def slots_worker(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[tuple[str, Checks]]:
    checks = Checks(time_skipping_env.client)
    queue = f"slots-{uuid.uuid4().hex[:8]}"
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[JobSlotsWorkflow, SlotHolderWorkflow],
        activities=[checks.running_workflows],
    ):
        yield queue, checks


async def test_a_request_during_the_holder_check_is_granted_at_once(
    time_skipping_env: WorkflowEnvironment, slots_worker: tuple[str, Checks]
) -> None:
    client, (queue, checks) = time_skipping_env.client, slots_worker
    first = await client.start_workflow(
        SlotHolderWorkflow.run, id=f"h1-{uuid.uuid4().hex[:6]}", task_queue=queue
    )
    checks.slots = f"slots-{uuid.uuid4().hex[:6]}"
    slots = await client.start_workflow(
        JobSlotsWorkflow.run, None, id=checks.slots, task_queue=queue,
        start_signal="request", start_signal_args=[SlotRequest(holder=first.id, limit=2)],
    )
    await first.result()  # granted: the only asker, a free slot

    with time_skipping_env.auto_time_skipping_disabled():
        second = await client.start_workflow(
            SlotHolderWorkflow.run, id=f"h2-{uuid.uuid4().hex[:6]}", task_queue=queue
        )
        checks.asker = second.id  # asks for the second slot while the next holder check runs
        await time_skipping_env.sleep(HOLDER_CHECK + timedelta(seconds=0.5))
        assert checks.calls >= 1 and not checks.asker, "the holder check did not run"
        # Time passes for real from here: a lost request would wait for the next check, a minute on.
        try:
            await asyncio.wait_for(second.result(), 10)
        except TimeoutError:
            pytest.fail("the request that came during the holder check was not granted within 10 s")
    await slots.terminate("test over")
