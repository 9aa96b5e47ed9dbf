"""Periodic vault availability checks as one long-running workflow (not a cron in a pod).

The loop: check (an activity records each vault's status), wait ``interval`` (default 5 min,
requirements §2) or until signalled ``check_now``, repeat; after ``checks_per_run`` checks it
continues as new so its history stays small however long it runs.  A failing check activity
does not end the loop: the next round tries again.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDConflictPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from temporalio.client import Client, WorkflowHandle

    from schemas.vault import VaultAvailabilityInput, VaultCheckRequest, VaultCheckResult

WORKFLOW_ID = "vault-availability"
CHECK_TIMEOUT = timedelta(minutes=2)


@workflow.defn(name="VaultAvailability")
class VaultAvailabilityWorkflow:
    def __init__(self) -> None:
        self._results: list[VaultCheckResult] = []
        self._wake = False
        self._checks = 0

    @workflow.run
    async def run(self, params: VaultAvailabilityInput) -> None:
        while True:
            try:
                self._results = await workflow.execute_activity(
                    "vault.check_all",
                    VaultCheckRequest(names=params.vault_names),
                    result_type=list[VaultCheckResult],
                    start_to_close_timeout=CHECK_TIMEOUT,
                    retry_policy=RetryPolicy(maximum_attempts=3),
                )
            except ActivityError as err:
                workflow.logger.warning("vault availability check failed: %s", err.cause or err)
            self._checks += 1
            if self._checks >= params.checks_per_run or workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(params)
            self._wake = False
            with contextlib.suppress(TimeoutError):  # the interval passed without a check_now signal
                await workflow.wait_condition(lambda: self._wake, timeout=params.interval)

    @workflow.signal
    def check_now(self) -> None:
        self._wake = True

    @workflow.query
    def last_results(self) -> list[VaultCheckResult]:
        return self._results

    @workflow.query
    def checks_this_run(self) -> int:
        return self._checks


async def ensure_started(
    client: Client,
    *,
    task_queue: str,
    interval: timedelta = timedelta(minutes=5),
    workflow_id: str = WORKFLOW_ID,
) -> WorkflowHandle[VaultAvailabilityWorkflow, None]:
    """Start the checker unless it already runs (idempotent; call at worker start)."""
    return await client.start_workflow(
        VaultAvailabilityWorkflow.run,
        VaultAvailabilityInput(interval=interval),
        id=workflow_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


WORKFLOWS = [VaultAvailabilityWorkflow]
