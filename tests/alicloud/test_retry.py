"""call_with_backoff: bounded retries of transient ECS errors only."""

from __future__ import annotations

import pytest

from alicloud.errors import EcsError
from alicloud.retry import BackoffPolicy, call_with_backoff


def _throttled() -> EcsError:
    return EcsError("EcsThrottled", action="CopySnapshot", ecs_code="Throttling.User", attempts="1")


class Flaky:
    """Fails with the given errors in turn, then returns 'ok'."""

    def __init__(self, *errors: EcsError) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_retries_throttling_until_success() -> None:
    sleeps: list[float] = []
    retried: list[int] = []
    fn = Flaky(_throttled(), _throttled())
    result = call_with_backoff(
        fn,
        policy=BackoffPolicy(attempts=5, base_delay=1.0, max_delay=8.0, jitter=False),
        sleep=sleeps.append,
        on_retry=lambda attempt, err, delay: retried.append(attempt),
    )
    assert (result, fn.calls) == ("ok", 3)
    assert sleeps == [1.0, 2.0] and retried == [1, 2]


def test_budget_exhausted_names_the_attempts() -> None:
    fn = Flaky(*[_throttled() for _ in range(10)])
    with pytest.raises(EcsError) as caught:
        call_with_backoff(fn, policy=BackoffPolicy(attempts=3, base_delay=0), sleep=lambda _: None)
    assert fn.calls == 3
    err = caught.value
    assert err.code == "EcsThrottled" and err.retryable
    assert err.message == "ECS API CopySnapshot was throttled: gave up after 3 attempt(s)"
    assert err.ecs_code == "Throttling.User"


def test_permanent_errors_are_not_retried() -> None:
    fn = Flaky(EcsError("EcsPermission", action="CopySnapshot", ecs_code="Forbidden.RAM"))
    with pytest.raises(EcsError) as caught:
        call_with_backoff(fn, sleep=lambda _: None)
    assert fn.calls == 1 and caught.value.code == "EcsPermission"


def test_delays_grow_and_are_capped() -> None:
    policy = BackoffPolicy(attempts=10, base_delay=0.5, max_delay=4.0, jitter=False)
    assert [policy.delay(i) for i in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    jittered = BackoffPolicy(base_delay=2.0, max_delay=2.0)
    assert all(1.0 <= jittered.delay(3) <= 2.0 for _ in range(50))
