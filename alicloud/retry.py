"""Bounded retry with exponential backoff for throttled or briefly unavailable ECS calls.

ECS throttles per account and API; a burst of snapshot calls from a large backup hits that limit.  A short
in-process retry absorbs such bursts without failing the workflow step.  The budget is small on purpose:
beyond it the error surfaces (still marked retryable) and the workflow's own retry policy takes over, so
a long throttling period never hides inside one activity attempt.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from alicloud.errors import EcsError

T = TypeVar("T")


@dataclass(frozen=True)
class BackoffPolicy:
    """How often and how long to retry transient ECS errors.  ``attempts`` counts the first call."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """Pause before retry number ``retry`` (1-based): exponential, capped, optionally jittered."""
        delay: float = min(self.max_delay, self.base_delay * (2 ** (retry - 1)))
        if self.jitter:
            # "Equal jitter": keeps at least half the delay so retries still spread out under load.
            delay = delay / 2 + (rng or random).uniform(0, delay / 2)
        return delay


NO_RETRY = BackoffPolicy(attempts=1)


def _is_transient(err: EcsError) -> bool:
    return err.transient


def call_with_backoff(
    fn: Callable[[], T],
    *,
    policy: BackoffPolicy = BackoffPolicy(),
    retry_if: Callable[[EcsError], bool] = _is_transient,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, EcsError, float], None] | None = None,
) -> T:
    """Call ``fn`` and retry it while it raises a transient :class:`EcsError`, at most ``policy.attempts``.

    ``on_retry(attempt, error, delay)`` is told before each pause (for logs and activity heartbeats).
    When the budget is spent, the last error is raised again with the number of attempts in its message
    (``EcsThrottled``/``EcsUnavailable``), so the operator sees that retrying already happened.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except EcsError as err:
            if not retry_if(err):
                raise
            if attempt >= policy.attempts:
                final = _exhausted(err, attempt)
                if final is err:
                    raise
                raise final from err
            delay = policy.delay(attempt)
            if on_retry is not None:
                on_retry(attempt, err, delay)
            sleep(delay)


def _exhausted(err: EcsError, attempts: int) -> EcsError:
    if err.code not in ("EcsThrottled", "EcsUnavailable"):
        return err
    return err.with_params(attempts=str(attempts))
