"""The one retry policy of spindex.

A single function, `retry_delay`, decides whether a failed call is retried and how long to wait:
the service's `Retry-After` first (seconds or an HTTP date), otherwise capped exponential
backoff with full jitter. Every client (Graph, SharePoint REST, search, blob) calls `retrying`,
so they all agree on which statuses retry. The clock and the random source are injectable, so
tests run without sleeping.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

# Statuses worth another try: throttling (429), and transient service or gateway failures.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
THROTTLE_STATUSES = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times to retry and how long backoff may grow."""

    max_attempts: int = 10
    base_delay_s: float = 0.5
    max_delay_s: float = 60.0
    max_retry_after_s: float = 300.0


class Clock:
    """Real time; tests pass an object with the same two methods."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, never going back."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` without blocking the event loop."""
        await asyncio.sleep(seconds)


@dataclass(slots=True)
class RetryStats:
    """What retries cost, for the run report."""

    retries: int = 0
    throttled: int = 0
    waited_s: float = 0.0


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` (or `retry-after-ms`-free) header value, or None."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def header(headers: Mapping[str, object] | None, name: str) -> str | None:
    """A header value from a mapping whose keys may have any case and values may be lists."""
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == name.lower():
            if isinstance(value, (list, tuple, set)):
                value = next(iter(value), None)
            return None if value is None else str(value)
    return None


def retry_delay(
    status: int | None,
    attempt: int,
    headers: Mapping[str, object] | None,
    policy: RetryPolicy,
    rng: random.Random,
) -> float | None:
    """Seconds to wait before attempt `attempt + 1`, or None when the failure is final.

    `status` None stands for a connection failure or time-out, which is retried.
    """
    if attempt >= policy.max_attempts:
        return None
    if status is not None and status not in RETRYABLE_STATUSES:
        return None
    retry_after = parse_retry_after(header(headers, "Retry-After"))
    if retry_after is not None:
        if retry_after > policy.max_retry_after_s:
            return None
        return retry_after
    ceiling = min(policy.max_delay_s, policy.base_delay_s * (2 ** (attempt - 1)))
    return rng.uniform(0, ceiling)


@dataclass
class Retrier:
    """Runs calls under the policy and counts what the retries cost."""

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    clock: Clock = field(default_factory=Clock)
    rng: random.Random = field(default_factory=random.Random)
    stats: RetryStats = field(default_factory=RetryStats)

    async def run(
        self,
        call: Callable[[], Awaitable[T]],
        classify: Callable[[BaseException], tuple[int | None, Mapping[str, object] | None] | None],
    ) -> T:
        """Await `call()` until it succeeds or fails finally; re-raises the last error.

        `classify` maps an exception to (status, headers) when it is a transport failure worth
        judging, or None when it must propagate at once.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                return await call()
            except Exception as exc:  # judged by classify, re-raised when final
                judged = classify(exc)
                if judged is None:
                    raise
                status, headers = judged
                if status in THROTTLE_STATUSES:
                    self.stats.throttled += 1
                delay = retry_delay(status, attempt, headers, self.policy, self.rng)
                if delay is None:
                    raise
                self.stats.retries += 1
                self.stats.waited_s += delay
                await self.clock.sleep(delay)
