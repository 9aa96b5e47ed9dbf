"""A minimal job built on the shared step model, used to test the model itself."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import timedelta
from functools import partial

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.errors import product_errors
    from schemas.errors import BackupCenterError
    from schemas.specs import JobKind
    from schemas.status import JobPhase, JobStatus
    from workflows.steps import Decision, JobCanceled, JobFailed, JobRunner

# Test-controlled behaviour of the activity: how many calls fail before one succeeds.
FAILURES_LEFT: dict[str, int] = {}
CLEANED: list[str] = []


@activity.defn
@product_errors
def fragile_step(name: str) -> str:
    left = FAILURES_LEFT.get(name, 0)
    if left:
        FAILURES_LEFT[name] = left - 1
        raise BackupCenterError(
            "SnapshotNotReady",
            snapshot=f"snap-{name}",
            pvc=f"app/{name}",
            timeout="1m",
            reason="still pending",
        )
    return f"{name} done"


@activity.defn
def cleanup(name: str) -> None:
    CLEANED.append(name)


@workflow.defn
class StepDemoWorkflow:
    def __init__(self) -> None:
        self.runner = JobRunner(
            JobStatus(kind=JobKind.backup, name="demo"), operator_wait_timeout=timedelta(minutes=30)
        )

    @workflow.run
    async def run(self, names: list[str]) -> JobStatus:
        self.runner.declare("prepare", *[(f"volume {n}", True) for n in names])

        def run_step(name: str) -> Awaitable[str]:
            return workflow.execute_activity(
                fragile_step,
                name,
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(maximum_attempts=2, initial_interval=timedelta(milliseconds=10)),
            )

        try:
            await self.runner.step("prepare", lambda: run_step("prepare"))
            for n in names:
                await self.runner.step(f"volume {n}", partial(run_step, n), item=f"volume {n}")
        except JobCanceled:
            await workflow.execute_activity(cleanup, "demo", start_to_close_timeout=timedelta(seconds=10))
            return self.runner.finish(JobPhase.canceled)
        except JobFailed as failed:
            return self.runner.finish(JobPhase.failed, failed.info)
        phase = JobPhase.partially_failed if self.runner.status.item_errors_total else JobPhase.completed
        return self.runner.finish(phase)

    @workflow.signal
    def retry(self) -> None:
        self.runner.decide(Decision.retry)

    @workflow.signal
    def skip(self) -> None:
        self.runner.decide(Decision.skip)

    @workflow.signal
    def cancel(self) -> None:
        self.runner.decide(Decision.cancel)

    @workflow.query
    def status(self) -> JobStatus:
        return self.runner.status
