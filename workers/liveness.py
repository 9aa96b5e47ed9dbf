"""Every activity shows that its worker is alive, so a lost worker costs seconds, not minutes.

The server presumes an activity's worker gone only when no heartbeat arrives within the activity's
heartbeat timeout; without one it waits for the whole start-to-close timeout (two minutes for a quick
activity, twelve hours for a volume copy) before retrying elsewhere.  Most activities are short and
never heartbeat themselves, so this interceptor does two things, one per side:

* workflows: an activity started without a heartbeat timeout gets the worker's ``heartbeat_timeout``
  setting (seconds), and none gets a longer one;
* workers: while an activity runs, a background task heartbeats for it, repeating the details the
  activity last reported (or those its previous attempt left, which a retry resumes from): the
  server keeps only the newest details, so a bare keep-alive would wipe a copy's progress.

The keep-alive runs on the worker's event loop; sync activities run on the thread pool, so a busy
activity thread never delays it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.worker import (
    ActivityInboundInterceptor,
    ActivityOutboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

# Keep-alive beats per heartbeat timeout: a few may be late on a loaded machine without the server
# presuming the worker dead.
BEATS_PER_TIMEOUT = 5


class _Outbound(ActivityOutboundInterceptor):
    """Remembers the details of the activity's own heartbeats for the keep-alive to repeat."""

    def __init__(self, next: ActivityOutboundInterceptor, last: list[Sequence[Any]]) -> None:
        super().__init__(next)
        self._last = last

    def heartbeat(self, *details: Any) -> None:
        self._last[0] = details
        super().heartbeat(*details)


class _KeepAlive(ActivityInboundInterceptor):
    def init(self, outbound: ActivityOutboundInterceptor) -> None:
        # What a retry would resume from, until the activity reports anything itself.
        self._last: list[Sequence[Any]] = [tuple(activity.info().heartbeat_details)]
        self._outbound = _Outbound(outbound, self._last)
        super().init(self._outbound)

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        timeout = activity.info().heartbeat_timeout
        if not timeout:
            return await super().execute_activity(input)
        beat = asyncio.create_task(self._beat(timeout / BEATS_PER_TIMEOUT))
        try:
            return await super().execute_activity(input)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    async def _beat(self, every: timedelta) -> None:
        while True:
            await asyncio.sleep(every.total_seconds())
            # Past the recording interceptor: a keep-alive is not the activity's own report.
            self._outbound.next.heartbeat(*self._last[0])


class _WorkflowOutbound(WorkflowOutboundInterceptor):
    timeout: timedelta

    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        if input.heartbeat_timeout is None or input.heartbeat_timeout > self.timeout:
            input.heartbeat_timeout = self.timeout
        return super().start_activity(input)


def _workflow_inbound(timeout: timedelta) -> type[WorkflowInboundInterceptor]:
    outbound = type("LivenessOutbound", (_WorkflowOutbound,), {"timeout": timeout})

    class LivenessInbound(WorkflowInboundInterceptor):
        def init(self, outbound_next: WorkflowOutboundInterceptor) -> None:
            super().init(outbound(outbound_next))

    return LivenessInbound


class Liveness(Interceptor):
    """Heartbeat timeouts of ``heartbeat_timeout`` on every activity, and keep-alive heartbeats."""

    def __init__(self, heartbeat_timeout: timedelta) -> None:
        self._workflow_class = _workflow_inbound(heartbeat_timeout)

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _KeepAlive(next)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return self._workflow_class
