"""The periodic availability check as a Temporal workflow, on the time-skipping test server."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import vault as vault_activities
from schemas.vault import VaultAvailabilityInput, VaultCheckResult, VaultPhase
from vault.lifecycle import FileVaultRegistry, VaultManager
from workflows.vault_check import WORKFLOWS, VaultAvailabilityWorkflow

T = TypeVar("T")


async def eventually(fetch: Callable[[], Awaitable[T]], ok: Callable[[T], bool], timeout: float = 20.0) -> T:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await fetch()
        if ok(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met; last value: {value!r}")
        await asyncio.sleep(0.1)


def phases(results: list[VaultCheckResult]) -> dict[str, VaultPhase]:
    return {r.name: r.phase for r in results}


@pytest.fixture
def vaults(tmp_path: Path) -> Iterator[VaultManager]:
    manager = VaultManager(FileVaultRegistry(tmp_path / "state" / "vaults"), "cluster-a", lambda _spec: None)
    manager.create({"name": "one", "url": f"file://{tmp_path / 'one'}"})
    manager.create({"name": "two", "url": f"file://{tmp_path / 'two'}"})
    vault_activities.use_manager(lambda: manager)
    try:
        yield manager
    finally:
        vault_activities.use_manager(None)


async def test_periodic_checks_record_status_and_continue_as_new(
        time_skipping_env: WorkflowEnvironment, vaults: VaultManager, tmp_path: Path) -> None:
    env = time_skipping_env
    queue = f"vault-check-{uuid.uuid4().hex[:8]}"
    workflow_id = f"vault-availability-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(4) as pool:
        async with Worker(env.client, task_queue=queue, workflows=WORKFLOWS,
                          activities=vault_activities.ACTIVITIES, activity_executor=pool):
            await env.client.start_workflow(
                VaultAvailabilityWorkflow.run,
                VaultAvailabilityInput(interval=timedelta(minutes=5), checks_per_run=3),
                id=workflow_id, task_queue=queue,
            )
            latest: WorkflowHandle[VaultAvailabilityWorkflow, None] = env.client.get_workflow_handle_for(
                VaultAvailabilityWorkflow.run, workflow_id)
            first_run = (await latest.describe()).run_id

            async def results() -> list[VaultCheckResult]:
                return await latest.query(VaultAvailabilityWorkflow.last_results)

            first = await eventually(results, lambda r: len(r) == 2)
            assert phases(first) == {"one": VaultPhase.available, "two": VaultPhase.available}

            # The bucket of "two" disappears; the next round, 5 minutes later, reports it.
            shutil.rmtree(tmp_path / "two")
            await env.sleep(timedelta(minutes=5))
            second = await eventually(results, lambda r: phases(r).get("two") == VaultPhase.unavailable)
            cause = next(r.cause for r in second if r.name == "two")
            assert cause is not None and "does not exist" in cause
            stored = vaults.describe("two").status
            assert stored.phase == VaultPhase.unavailable and stored.cause == cause
            assert vaults.describe("one").status.phase == VaultPhase.available

            # After checks_per_run checks the workflow continues as new: a fresh, small history.
            await env.sleep(timedelta(minutes=5))

            async def run_id() -> str | None:
                return (await latest.describe()).run_id

            await eventually(run_id, lambda r: r != first_run)
            fresh = await eventually(lambda: latest.query(VaultAvailabilityWorkflow.checks_this_run),
                                     lambda n: n >= 1)
            assert fresh <= 2

            # check_now wakes it without waiting for the interval.
            before = await latest.query(VaultAvailabilityWorkflow.checks_this_run)
            await latest.signal(VaultAvailabilityWorkflow.check_now)
            await eventually(lambda: latest.query(VaultAvailabilityWorkflow.checks_this_run),
                             lambda n: n > before)
            await latest.terminate("test done")
