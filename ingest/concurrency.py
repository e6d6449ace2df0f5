"""Running awaitables at once: with a limit, in order, with one failure to raise."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from ingest.errors import SystemicError

T = TypeVar("T")


class _NotStarted(Exception):
    """An awaitable `in_order` did not start because another had already failed."""


async def in_order(awaitables: Sequence[Awaitable[T]], limit: int | None = None) -> list[T]:
    """The awaitables' results, awaited concurrently, at most `limit` at a time.

    The first failure in their order is raised once those started have ended; with a `limit`,
    none is started after one has failed (a refused credential costs `limit` more requests,
    not one per site).
    """
    gate = asyncio.Semaphore(limit) if limit else None
    failed = False

    async def gated(awaitable: Awaitable[T]) -> T:
        nonlocal failed
        assert gate is not None
        async with gate:
            if failed:
                raise _NotStarted
            try:
                return await awaitable
            except BaseException:
                failed = True
                raise

    try:
        results = await asyncio.gather(
            *(awaitables if gate is None else [gated(a) for a in awaitables]), return_exceptions=True
        )
    finally:
        for awaitable in awaitables:  # never started (after a failure, or cancelled first): not "never awaited"
            if inspect.iscoroutine(awaitable) and inspect.getcoroutinestate(awaitable) == inspect.CORO_CREATED:
                awaitable.close()
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, _NotStarted):
            raise result
    return results  # type: ignore[return-value]


def _unwrap(group: BaseExceptionGroup) -> BaseException:
    """The exception to surface from a task group: a systemic one first, else the first."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for exc in leaves:
        if isinstance(exc, SystemicError):
            return exc
    return leaves[0]


async def at_once(things: Sequence[T], work: Callable[[T], Awaitable[None]], limit: asyncio.Semaphore) -> None:
    """`work(thing)` for every thing, at most `limit` at a time; the first failure (a systemic
    one first) cancels the rest and is raised."""

    async def limited(thing: T) -> None:
        async with limit:
            await work(thing)

    try:
        async with asyncio.TaskGroup() as group:
            for thing in things:
                group.create_task(limited(thing))
    except BaseExceptionGroup as exc:
        raise _unwrap(exc) from None
