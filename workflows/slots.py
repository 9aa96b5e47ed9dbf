"""Job slots: at most N jobs of a kind run at once (settings backup_max_workers and friends).

One small workflow per control queue and job kind (``slots-<queue>-<kind>``) keeps the holders
and a FIFO queue.  A job asks for a slot through an activity (signal-with-start, so the first
asker starts it), waits for the ``slot_granted`` signal, and releases the slot when it ends.
Every request carries the limit from the settings of that moment, so a changed limit applies
without restarting anything.  A holder that ended without releasing (terminated by hand) is
found by a periodic check and its slot is given to the next job.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import slots as acts
    from schemas.slots import SLOTS_WORKFLOW, SlotRequest, SlotsState

# Continue-as-new before the history grows large; the state is small.
MAX_EVENTS = 500
IDLE_EXIT = timedelta(minutes=10)
HOLDER_CHECK = timedelta(minutes=1)


@workflow.defn(name=SLOTS_WORKFLOW)
class JobSlotsWorkflow:
    def __init__(self) -> None:
        self.state = SlotsState()
        self._changed = False
        self._events = 0

    @workflow.run
    async def run(self, state: SlotsState | None) -> None:
        if state is not None:
            self.state = state
        idle_since = workflow.now()
        last_check = workflow.now()
        while True:
            # Consumed before admitting: a request or release that arrives from here on (while this
            # loop admits, or checks holders below) wakes the wait at once.  Resetting the flag after
            # the check lost such a request until the asker re-sent it 10 s later.
            self._changed = False
            await self._admit()
            if self.state.holders or self.state.queue:
                idle_since = workflow.now()
            elif workflow.now() - idle_since >= IDLE_EXIT and not self._changed:
                return  # the next request starts a fresh run
            if self._events >= MAX_EVENTS:
                workflow.continue_as_new(self.state)
            if self.state.holders and workflow.now() - last_check >= HOLDER_CHECK:
                last_check = workflow.now()
                running = await workflow.execute_activity(
                    acts.running_workflows, self.state.holders, start_to_close_timeout=timedelta(seconds=30)
                )
                gone = [h for h in self.state.holders if h not in running]
                for holder in gone:
                    self.state.holders.remove(holder)
                if gone:
                    continue
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._changed, timeout=HOLDER_CHECK)

    async def _admit(self) -> None:
        while self.state.queue and len(self.state.holders) < self.state.limit:
            holder = self.state.queue.pop(0)
            self.state.holders.append(holder)
            try:
                await workflow.get_external_workflow_handle(holder).signal("slot_granted")
            except ApplicationError:
                self.state.holders.remove(holder)  # it ended while queued

    @workflow.signal
    def request(self, request: SlotRequest) -> None:
        self._events += 1
        self.state.limit = max(1, request.limit)
        if request.holder not in self.state.holders and request.holder not in self.state.queue:
            self.state.queue.append(request.holder)
        self._changed = True

    @workflow.signal
    def release(self, holder: str) -> None:
        self._events += 1
        if holder in self.state.holders:
            self.state.holders.remove(holder)
        if holder in self.state.queue:
            self.state.queue.remove(holder)
        self._changed = True

    @workflow.query
    def slots(self) -> SlotsState:
        return self.state
