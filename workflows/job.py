"""The shape every job workflow has, so each job's own module holds only its runbook.

A job reads the settings as they are now, publishes its step table, waits for one of its kind's
job slots, runs its runbook step by step (see workflows/steps.py), and ends in one of three ways:

* completed (PartiallyFailed when items failed or were skipped),
* canceled by the operator or the Temporal cancel API: the job's ``cleanup`` removes what it made,
* failed, with the error ``describe`` shows: the same ``cleanup`` runs first.

The slot is released however it ends.  Operator signals (retry, skip, cancel) and the ``status``
query are the same for every job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import ClassVar, Generic, Protocol, TypeVar, cast

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from activities.settings import load_settings
    from schemas.errors import ErrorInfo
    from schemas.resources import OBJECT_NAMESPACE_MEMO
    from schemas.settings import Settings
    from schemas.specs import JobKind
    from schemas.status import JobPhase, JobStatus
    from workflows.job_object import ObjectMirror
    from workflows.step_controls import OperatorControls
    from workflows.steps import QUICK, TRANSIENT, JobCanceled, JobFailed, JobRunner



class _Spec(Protocol):
    @property
    def name(self) -> str: ...


SpecT = TypeVar("SpecT", bound=_Spec)


def setting_limit(name: str) -> Callable[[], Awaitable[int]]:
    """A job-slot limit read from the latest settings (``backup_max_workers``, say), so a changed
    limit applies without restarting anything."""

    async def limit() -> int:
        latest = await workflow.execute_activity(load_settings, start_to_close_timeout=QUICK)
        return int(getattr(latest, name))

    return limit


class JobWorkflow(OperatorControls, Generic[SpecT]):
    """Base of the backup, restore, convert and delete workflows.

    A subclass names its ``kind`` and the setting that limits how many run at once, declares its
    steps in ``prepare`` and runs them in ``runbook``; ``cleanup`` undoes what a canceled or failed
    run made.  Its ``@workflow.run`` method only calls :meth:`run_job` (Temporal wants the run
    method on the workflow class itself).
    """

    kind: ClassVar[JobKind]
    slot_setting: ClassVar[str]
    # Jobs nobody is expected to steer (restore drills, often scheduled): a failed step does not wait
    # for an operator (workflows/steps.py JobRunner.unattended).
    unattended: ClassVar[bool] = False

    def __init__(self) -> None:
        self.runner: JobRunner | None = None
        self._status = JobStatus(kind=self.kind, name="")

    # --- what each job provides -----------------------------------------------------------------
    def prepare(self, spec: SpecT, settings: Settings) -> Sequence[str | tuple[str, bool]]:
        """The job's first state (summary fields, run identifiers) and its declared steps."""
        raise NotImplementedError

    async def runbook(self, spec: SpecT, settings: Settings, runner: JobRunner) -> None:
        raise NotImplementedError

    async def cleanup(self, *, canceled: bool, error: ErrorInfo | None) -> None:
        """Undo what a canceled or failed run made (best effort; a failure is only a warning)."""

    # --- the skeleton ---------------------------------------------------------------------------
    async def run_job(self, spec: SpecT) -> JobStatus:
        self._status = JobStatus(kind=self.kind, name=spec.name, started_at=workflow.now())
        settings: Settings = await workflow.execute_activity(
            load_settings, start_to_close_timeout=QUICK, retry_policy=TRANSIENT
        )
        runner = JobRunner(self._status, operator_wait_timeout=settings.operator_wait_timeout)
        runner.unattended = self.unattended or bool(getattr(spec, "unattended", False))
        self.runner = runner
        # The job's custom resource: the one it was started for, or (a CLI job) one made for it.
        self.object_namespace: str | None = workflow.memo_value(OBJECT_NAMESPACE_MEMO, None, type_hint=str)
        mirror = ObjectMirror(
            self._status, cast(BaseModel, spec), self.object_namespace, settings.product_namespace
        )
        runner.on_publish = mirror.changed
        mirror.start()
        runner.declare(*self.prepare(spec, settings))
        error: ErrorInfo | None = None
        try:
            await runner.acquire_slot(self.kind.value, setting_limit(self.slot_setting))
            await self.runbook(spec, settings, runner)
            phase = JobPhase.partially_failed if self._status.item_errors_total else JobPhase.completed
        except (JobCanceled, asyncio.CancelledError):
            await self.cleanup(canceled=True, error=None)
            phase = JobPhase.canceled
        except JobFailed as failed:
            error = failed.info
            await self.cleanup(canceled=False, error=error)
            phase = JobPhase.failed
        finally:
            await runner.slot.release()
        status = runner.finish(phase, error)
        await mirror.close()
        return status

    @workflow.query
    def status(self) -> JobStatus:
        return self._status
