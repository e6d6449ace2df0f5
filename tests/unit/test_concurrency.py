"""`in_order` and `at_once`: results in order, limits kept, one failure raised, and work stopped
after a failure where that is promised."""

from __future__ import annotations

import asyncio
import gc
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.concurrency import at_once, in_order
from ingest.errors import SourceUnavailable, SystemicError


class Work:
    """Awaitables that record how many run at once and which started; some fail."""

    def __init__(self, failing: set[int], seed: int) -> None:
        self.failing = failing
        self.rng = random.Random(seed)
        self.running = self.most = 0
        self.started: list[int] = []
        self.started_before_failure: int | None = None  # how many had started when one first failed

    async def one(self, n: int) -> int:
        self.started.append(n)
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            for _ in range(self.rng.randint(0, 3)):
                await asyncio.sleep(0)
            if n in self.failing:
                if self.started_before_failure is None:
                    self.started_before_failure = len(self.started)
                raise ValueError(f"failed {n}")
            return n * 10
        finally:
            self.running -= 1


@given(
    count=st.integers(0, 30),
    limit=st.one_of(st.none(), st.integers(1, 8)),
    failing=st.sets(st.integers(0, 29), max_size=4),
    seed=st.integers(0, 1000),
)
@settings(max_examples=300, deadline=None)
def test_in_order_keeps_order_and_limit_and_raises_the_first_failure_that_ran(
    count: int, limit: int | None, failing: set[int], seed: int
) -> None:
    work = Work({n for n in failing if n < count}, seed)

    async def run() -> list[int]:
        return await in_order([work.one(n) for n in range(count)], limit=limit)

    ran_failing = None
    try:
        results = asyncio.run(run())
    except ValueError as exc:
        ran_failing = int(str(exc).split()[-1])
    if limit is not None:
        assert work.most <= limit
    if ran_failing is None:
        assert not work.failing and results == [n * 10 for n in range(count)]
        assert sorted(work.started) == list(range(count))
        return
    # The raised failure is the first, in order, of those that ran.
    assert ran_failing == min(n for n in work.failing if n in work.started)
    if limit is None:
        assert sorted(work.started) == list(range(count))  # without a limit, everything ran
    else:
        assert len(work.started) == work.started_before_failure  # none started after a failure


def test_in_order_leaves_no_coroutine_unawaited(recwarn: pytest.WarningsRecorder) -> None:
    work = Work({0}, 1)

    async def run() -> None:
        with pytest.raises(ValueError, match="failed 0"):
            await in_order([work.one(n) for n in range(20)], limit=1)

    asyncio.run(run())
    assert work.started == [0]
    assert not [w for w in recwarn if "never awaited" in str(w.message)]


def test_at_once_raises_a_systemic_failure_before_others_and_cancels_the_rest() -> None:
    finished: list[int] = []

    async def one(n: int) -> None:
        if n == 1:
            raise SourceUnavailable("Graph unreachable")
        if n == 2:
            raise ValueError("an item's own failure")
        await asyncio.sleep(0 if n < 3 else 60)
        finished.append(n)

    async def run() -> None:
        await at_once(list(range(6)), one, asyncio.Semaphore(6))

    with pytest.raises(SystemicError, match="unreachable"):
        asyncio.run(asyncio.wait_for(run(), 30))
    assert finished == [0]  # the slow ones were cancelled, not waited for


@pytest.mark.parametrize("limit", [None, 2])
def test_a_cancelled_in_order_leaves_no_coroutine_unawaited(recwarn: pytest.WarningsRecorder, limit: int | None) -> None:
    async def slow() -> None:
        await asyncio.sleep(60)

    async def run() -> None:
        task = asyncio.ensure_future(in_order([slow() for _ in range(10)], limit=limit))
        await asyncio.sleep(0)  # in_order has handed them out; none (or `limit`) has started
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    gc.collect()
    assert not [w for w in recwarn if "never awaited" in str(w.message)]
