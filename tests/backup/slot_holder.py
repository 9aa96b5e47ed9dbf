"""A stand-in job for the slots tests: it only waits for its slot and tells when it got it."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow


@workflow.defn
class SlotHolderWorkflow:
    def __init__(self) -> None:
        self.granted_at: datetime | None = None

    @workflow.run
    async def run(self) -> float:
        """Seconds of workflow time from its start to the grant."""
        started = workflow.now()
        await workflow.wait_condition(lambda: self.granted_at is not None)
        assert self.granted_at is not None
        return (self.granted_at - started).total_seconds()

    @workflow.signal
    def slot_granted(self) -> None:
        self.granted_at = workflow.now()
