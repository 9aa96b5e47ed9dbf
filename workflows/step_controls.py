"""The signals every job workflow answers, as a mixin over its :class:`JobRunner`.

Operators send ``retry`` (run the failed step again), ``skip`` (give up on a per-item step; the
job ends PartiallyFailed) and ``cancel`` (stop and clean up what the job created).  The job-slot
workflow (workflows/slots.py) sends ``slot_granted``.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.steps import Decision, JobRunner


class OperatorControls:
    runner: JobRunner | None

    @workflow.signal
    def retry(self) -> None:
        if self.runner:
            self.runner.decide(Decision.retry)

    @workflow.signal
    def skip(self) -> None:
        if self.runner:
            self.runner.decide(Decision.skip)

    @workflow.signal
    def cancel(self) -> None:
        if self.runner:
            self.runner.decide(Decision.cancel)

    @workflow.signal
    def slot_granted(self) -> None:
        if self.runner:
            self.runner.slot.grant()
