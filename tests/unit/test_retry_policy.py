"""The one retry policy: Retry-After is honoured first, backoff is capped, final failures are final.

Defends: a throttled call waits what the service asked (seconds or HTTP date) and is retried;
non-retryable statuses propagate at once; attempts are bounded; throttles are counted.
"""

from __future__ import annotations

import random
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from ingest.retry import Retrier, RetryPolicy, parse_retry_after, retry_delay
from tests.fakes.clock import FakeClock


class Status(Exception):
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.headers = headers or {}


def classify(exc: BaseException):
    return (exc.status, exc.headers) if isinstance(exc, Status) else None


def test_retry_after_seconds_and_http_date_are_parsed() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    later = datetime(2030, 1, 1, tzinfo=timezone.utc)
    value = format_datetime(later, usegmt=True)
    assert parse_retry_after(value, now=(later - timedelta(seconds=30)).timestamp()) == pytest.approx(30)


def test_non_retryable_status_is_final() -> None:
    rng = random.Random(1)
    for status in (400, 401, 403, 404, 410, 412):
        assert retry_delay(status, 1, {}, RetryPolicy(), rng) is None


@given(attempt=st.integers(1, 5), status=st.sampled_from([429, 500, 502, 503, 504, None]))
def test_backoff_is_bounded_and_retry_after_wins(attempt: int, status: int | None) -> None:
    policy = RetryPolicy(max_attempts=6, base_delay_s=0.5, max_delay_s=4)
    rng = random.Random(attempt)
    delay = retry_delay(status, attempt, {}, policy, rng)
    assert delay is not None and 0 <= delay <= min(4, 0.5 * 2 ** (attempt - 1))
    assert retry_delay(status, attempt, {"retry-after": "3"}, policy, rng) == 3.0
    assert retry_delay(status, 6, {}, policy, rng) is None


async def test_throttled_call_waits_what_the_service_asked_and_counts() -> None:
    clock = FakeClock()
    retrier = Retrier(RetryPolicy(max_attempts=5), clock=clock, rng=random.Random(0))
    answers = [Status(429, {"Retry-After": "2"}), Status(503, {"Retry-After": "1"}), "ok"]

    async def call() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert await retrier.run(call, classify) == "ok"
    assert clock.sleeps == [2.0, 1.0]
    assert retrier.stats.throttled == 2 and retrier.stats.retries == 2


async def test_attempts_are_bounded_then_the_last_error_propagates() -> None:
    clock = FakeClock()
    retrier = Retrier(RetryPolicy(max_attempts=3), clock=clock, rng=random.Random(0))
    calls = 0

    async def call() -> None:
        nonlocal calls
        calls += 1
        raise Status(503)

    with pytest.raises(Status):
        await retrier.run(call, classify)
    assert calls == 3 and len(clock.sleeps) == 2


async def test_unclassified_errors_propagate_at_once() -> None:
    retrier = Retrier(clock=FakeClock())

    async def call() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        await retrier.run(call, classify)
    assert retrier.stats.retries == 0
