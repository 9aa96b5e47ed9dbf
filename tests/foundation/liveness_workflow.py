"""A workflow and activities for the liveness tests (a module of their own: the sandbox re-imports it)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy


@activity.defn
def quiet(seconds: float) -> int:
    """Works for a while and never heartbeats itself; returns its attempt number."""
    time.sleep(seconds)
    return activity.info().attempt


@activity.defn
def resumable(seconds: float) -> list[Any]:
    """Attempt 1 reports progress, works, then dies; attempt 2 reports nothing, works, dies; attempt 3
    returns what it would resume from."""
    attempt = activity.info().attempt
    if attempt == 1:
        activity.heartbeat({"files_done": 7})
    if attempt < 3:
        time.sleep(seconds)
        raise RuntimeError(f"attempt {attempt} lost")
    return list(activity.info().heartbeat_details)


@workflow.defn
class LivenessWorkflow:
    @workflow.run
    async def run(self, which: str, seconds: float, asked: float | None) -> Any:
        fn = quiet if which == "quiet" else resumable
        return await workflow.execute_activity(
            fn,
            seconds,
            start_to_close_timeout=timedelta(minutes=1),
            heartbeat_timeout=timedelta(seconds=asked) if asked else None,
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=3),
        )
