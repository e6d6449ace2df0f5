"""A clock for `Retrier` and the budgets' token buckets that moves only when someone sleeps."""

from __future__ import annotations


class FakeClock:
    """Monotonic time that advances by exactly what is slept, recording each sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
