"""The step model every job workflow shares.

A job is a list of named steps.  Each step runs activities with retry policies for transient
faults.  When a step still fails, the job does not die: it records the error (code, message,
causes, fixes), enters ``WaitingForOperator`` and waits for the operator's ``retry``, ``skip``
(per-item steps only) or ``cancel`` — with a deadline, after which the job fails.  The step
table is published as the workflow's current details and search attributes, so the Web UI
shows where a job stands and ``BackupPhase = 'WaitingForOperator'`` lists the stuck ones.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from enum import StrEnum
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    TimeoutError,
)

with workflow.unsafe.imports_passed_through():
    from activities import search_attributes as sa
    from schemas.errors import BackupCenterError, ErrorInfo
    from schemas.status import ItemIssue, JobPhase, JobStatus, Progress, StepState, StepStatus

T = TypeVar("T")

# Transient faults (API server 5xx/429, network) are retried before an operator is asked.
TRANSIENT = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
)


def transient(non_retryable: list[str] | None = None) -> RetryPolicy:
    """TRANSIENT, except for the product error codes that no retry can fix (timeouts, say)."""
    return RetryPolicy(
        initial_interval=TRANSIENT.initial_interval,
        backoff_coefficient=TRANSIENT.backoff_coefficient,
        maximum_interval=TRANSIENT.maximum_interval,
        maximum_attempts=TRANSIENT.maximum_attempts,
        non_retryable_error_types=non_retryable or [],
    )


# Start-to-close timeout of quick activities (one API call or a few): it bounds a hung call, not a
# lost worker, which the heartbeat timeout every activity gets notices in seconds.
QUICK = timedelta(minutes=2)


async def act(
    fn: Any,
    *args: Any,
    summary: str | None = None,
    timeout: timedelta = QUICK,
    non_retryable: list[str] | None = None,
    heartbeat: timedelta | None = None,
) -> Any:
    """One activity of a step: transient faults retried, then the step's operator decides.

    Without ``heartbeat`` the worker's liveness timeout applies (workers/liveness.py): every activity
    heartbeats, so a killed worker is noticed in seconds whatever the start-to-close timeout."""
    return await workflow.execute_activity(
        fn,
        args=list(args),
        start_to_close_timeout=timeout,
        heartbeat_timeout=heartbeat,
        retry_policy=transient(non_retryable),
        summary=summary,
    )


class Decision(StrEnum):
    retry = "retry"
    skip = "skip"
    cancel = "cancel"


class JobCanceled(Exception):
    """The operator (or the Temporal cancel API) asked the job to stop."""


class JobFailed(Exception):
    """A failure the job cannot get past; carries the error shown by ``describe``."""

    def __init__(self, info: ErrorInfo) -> None:
        super().__init__(info.short())
        self.info = info


def produced(result: T | None, step: str) -> T:
    """The result of a step that cannot be skipped: None there is a bug, and the job fails naming it."""
    if result is None:
        raise JobFailed(
            BackupCenterError("StepFailed", step=step, reason="it produced no result").info()
        )
    return result


def error_info_from(err: BaseException, *, on_timeout: ErrorInfo | None = None) -> ErrorInfo:
    """Extract the product error an activity raised, or describe the failure generically."""
    cause: BaseException | None = err
    while isinstance(cause, ActivityError | ChildWorkflowError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError) and cause.details:
        detail = cause.details[0]
        if isinstance(detail, dict) and "code" in detail:
            return ErrorInfo.model_validate(detail)
    if isinstance(cause, TimeoutError) and on_timeout is not None:
        return on_timeout
    message = str(cause) if cause is not None else str(err)
    return ErrorInfo(
        code="StepFailed",
        kind="JobError",
        message=message or type(err).__name__,
        causes=["An unexpected error; see the message."],
        fixes=["Fix the cause, then `retry` the job."],
        detail=type(cause).__name__ if cause is not None else None,
    )


class SlotClaim:
    """This workflow's claim on a job slot (see workflows/slots.py)."""

    def __init__(self) -> None:
        self.granted = False
        self.kind: str | None = None

    def grant(self) -> None:
        self.granted = True

    async def acquire(
        self, kind: str, limit: Callable[[], Awaitable[int]], cancelled: Callable[[], bool]
    ) -> None:
        """Queue for a slot; ``limit`` reads the current setting.

        The request is renewed every 10 seconds with the setting as it is then, so raising the
        limit lets waiting jobs start without restarting anything.
        """
        from activities import slots as slot_acts

        self.kind = kind
        while not self.granted and not cancelled():
            await workflow.execute_activity(
                slot_acts.request_slot,
                args=[kind, workflow.info().workflow_id, await limit()],
                start_to_close_timeout=timedelta(minutes=1),
            )
            try:
                await workflow.wait_condition(
                    lambda: self.granted or cancelled(), timeout=timedelta(seconds=10)
                )
            except builtins.TimeoutError:
                continue

    async def release(self) -> None:
        if self.kind is None:
            return
        from activities import slots as slot_acts

        await workflow.execute_activity(
            slot_acts.release_slot,
            args=[self.kind, workflow.info().workflow_id],
            start_to_close_timeout=timedelta(minutes=1),
        )
        self.kind = None


class JobRunner:
    """Runs a job's steps with operator controls; owned by one workflow instance."""

    def __init__(self, status: JobStatus, *, operator_wait_timeout: timedelta) -> None:
        self.status = status
        self.operator_wait_timeout = operator_wait_timeout
        # Unattended (a restore drill's restore): nobody is there to decide, so a failed step is
        # skipped when it may be (its item counts as failed) and fails the job otherwise.
        self.unattended = False
        self._decision: Decision | None = None
        self._cancel_requested = False
        self.slot = SlotClaim()
        # Visibility is opted into by the starter, which sets the job's search attributes at
        # start; servers without our attributes (the time-skipping test server) then still work.
        self._visible = workflow.info().typed_search_attributes.get(sa.PHASE) is not None
        # Called on every step transition (the job's custom resource follows them, workflows/job_object.py).
        self.on_publish: Callable[[], None] | None = None

    # --- declaration and publication ----------------------------------------------------
    def declare(self, *steps: str | tuple[str, bool]) -> None:
        for step in steps:
            name, skippable = (step, False) if isinstance(step, str) else step
            self.status.steps.append(StepStatus(name=name, skippable=skippable))
        self.publish()

    def skip_step(self, name: str, why: str) -> None:
        """A step the job has no work for (not one the operator skipped: see :meth:`step`)."""
        step = self.status.step(name)
        step.state = StepState.skipped
        step.message = why

    def add_step(self, name: str, *, skippable: bool = False, before: str | None = None) -> None:
        """Add a step found at run time (one per volume, say), before ``before`` when given."""
        if any(step.name == name for step in self.status.steps):
            return
        names = [step.name for step in self.status.steps]
        at = names.index(before) if before in names else len(names)
        self.status.steps.insert(at, StepStatus(name=name, skippable=skippable))

    def headline(self) -> str:
        """The first line a person reads in the Web UI: the phase, and for a stuck job what it waits
        for and the commands that steer it."""
        status = self.status
        if status.phase is JobPhase.waiting_for_operator and status.current_step:
            error = status.error.short() if status.error else "it failed"
            return (
                f"**WaitingForOperator** at step {status.current_step!r}: {error}. Steer it with "
                f"`backupctl {status.kind.value} retry|skip|cancel {status.name}` "
                f"(`describe` shows causes and fixes).\n\n"
            )
        where = f" at step {status.current_step!r}" if status.current_step else ""
        return f"**{status.phase.value}**{where}\n\n"

    def _show(self) -> None:
        workflow.set_current_details(self.headline() + self.status.render_table())

    def publish(self) -> None:
        self._show()
        if self.on_publish is not None:
            self.on_publish()
        if not self._visible:
            return
        workflow.upsert_search_attributes(
            [
                sa.PHASE.value_set(self.status.phase.value),
                sa.STEP.value_set(self.status.current_step or ""),
            ]
        )

    def set_progress(self, step: str, done: int, total: int | None, unit: str) -> None:
        self.status.step(step).progress = Progress(done=done, total=total, unit=unit)
        self._show()

    # --- operator signals ---------------------------------------------------------------
    @property
    def cancel_requested(self) -> bool:
        return self._cancel_requested

    def decide(self, decision: Decision) -> None:
        if decision is Decision.cancel:
            self._cancel_requested = True
        self._decision = decision

    # --- job slots (concurrency limits) ------------------------------------------------
    async def acquire_slot(self, kind: str, limit: Callable[[], Awaitable[int]]) -> None:
        """Wait for one of the ``kind`` job slots, showing it as the current step."""
        self.status.current_step = "waiting for a slot"
        self.publish()
        await self.slot.acquire(kind, limit, lambda: self._cancel_requested)
        self._check_cancel()

    # --- running steps ------------------------------------------------------------------
    async def step(
        self,
        name: str,
        action: Callable[[], Awaitable[T]],
        *,
        on_timeout: ErrorInfo | None = None,
        item: str | None = None,
    ) -> T | None:
        """Run one step until it succeeds, is skipped (returns None) or the job ends."""
        step = self.status.step(name)
        while True:
            self._check_cancel()
            # A step may run several activities one after the other (one call each): only a first
            # run and an operator's retry are attempts, not the step's next activity.
            if step.state not in (StepState.running, StepState.succeeded):
                step.attempts += 1
            step.state = StepState.running
            step.error = None
            step.started_at = step.started_at or workflow.now()
            self.status.current_step = name
            self.status.phase = JobPhase.in_progress
            self.status.error = None
            self.publish()
            try:
                result = await self._run_cancellable(action)
            except (ActivityError, ChildWorkflowError, ApplicationError) as err:
                info = error_info_from(err, on_timeout=on_timeout)
                if info.final:
                    # Nothing an operator does within this job can mend it (the spec is fixed):
                    # waiting would only hold the job, and a plan's later runs, for nothing.
                    step.state = StepState.failed
                    step.error = info
                    step.finished_at = workflow.now()
                    raise JobFailed(info) from None
                if self.unattended and not step.skippable:
                    step.state = StepState.failed
                    step.error = info
                    step.finished_at = workflow.now()
                    raise JobFailed(info) from None
                if self.unattended:
                    decision = Decision.skip
                else:
                    decision = await self._wait_for_operator(step, info)
                if decision is Decision.retry:
                    continue
                # skip: the item counts as failed and the job ends PartiallyFailed.
                step.state = StepState.skipped
                step.finished_at = workflow.now()
                self.status.add_item_error(ItemIssue(item=item or name, message=info.short(), code=info.code))
                self.status.phase = JobPhase.in_progress
                self.status.error = None
                self.publish()
                return None
            step.state = StepState.succeeded
            step.finished_at = workflow.now()
            self.publish()
            return result

    async def _run_cancellable(self, action: Callable[[], Awaitable[T]]) -> T:
        task: asyncio.Task[T] = asyncio.ensure_future(action())
        await workflow.wait_condition(lambda: task.done() or self._cancel_requested)
        if not task.done():
            # Cancelling the task cancels its activities; they see it at their next heartbeat.
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ActivityError, ChildWorkflowError):
                await task
            raise JobCanceled()
        return task.result()

    async def _wait_for_operator(self, step: StepStatus, info: ErrorInfo) -> Decision:
        step.state = StepState.waiting_for_operator
        step.error = info
        self.status.phase = JobPhase.waiting_for_operator
        self.status.error = info
        self._decision = None
        self.publish()
        allowed = {Decision.retry, Decision.cancel} | ({Decision.skip} if step.skippable else set())
        try:
            # A named timer: the event history says what the job waits for, and how to steer it.
            choices = "|".join(sorted(d.value for d in allowed))
            await workflow.wait_condition(
                lambda: self._decision in allowed,
                timeout=self.operator_wait_timeout,
                timeout_summary=f"operator decision for step {step.name!r} ({info.code}): "
                f"backupctl {self.status.kind.value} {choices} {self.status.name}",
            )
        except builtins.TimeoutError:
            step.state = StepState.failed
            step.finished_at = workflow.now()
            raise JobFailed(
                ErrorInfo(
                    code="OperatorTimeout",
                    kind="JobError",
                    message=(
                        f"no operator action within {self.operator_wait_timeout} after step "
                        f"{step.name} failed: {info.short()}"
                    ),
                    causes=info.causes,
                    fixes=info.fixes,
                )
            ) from None
        decision = self._decision
        assert decision is not None
        self._decision = None
        if decision is Decision.cancel:
            step.state = StepState.canceled
            raise JobCanceled()
        return decision

    def _check_cancel(self) -> None:
        if self._cancel_requested:
            raise JobCanceled()

    # --- finishing ----------------------------------------------------------------------
    def finish(self, phase: JobPhase, error: ErrorInfo | None = None) -> JobStatus:
        self.status.phase = phase
        self.status.error = error
        self.status.completed_at = workflow.now()
        for step in self.status.steps:
            if step.state in (StepState.running, StepState.waiting_for_operator):
                step.state = StepState.canceled if phase is JobPhase.canceled else StepState.failed
            elif step.state is StepState.pending and phase in (JobPhase.canceled, JobPhase.failed):
                step.state = StepState.canceled
        self.status.current_step = None
        self.publish()
        return self.status
