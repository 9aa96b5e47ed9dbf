"""Waiting inside an activity: deadlines that survive retries, polling with heartbeats."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import CancelledError

POLL_SECONDS = 1.0


def deadline(timeout: timedelta) -> datetime:
    """The deadline survives activity retries: it counts from the first attempt."""
    info = activity.info()
    started = info.started_time if info.attempt == 1 else (info.scheduled_time or info.started_time)
    return started + timeout


def beat(details: dict[str, Any]) -> None:
    """Heartbeat, and end the activity when its job was canceled."""
    activity.heartbeat(details)
    if activity.is_cancelled():
        raise CancelledError("job canceled")


def poll(pending: list[Any], done: Callable[[Any], bool], until: datetime, what: str) -> list[Any]:
    """Poll until every item is done or the deadline passes; returns those still pending."""
    while pending:
        pending = [p for p in pending if not done(p)]
        beat({"waiting": len(pending), "for": what})
        if not pending or datetime.now(UTC) >= until:
            break
        time.sleep(POLL_SECONDS)
    return pending
