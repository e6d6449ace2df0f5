"""Running awaitables at once: with a limit, in order, with one failure to raise."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from ingest.errors import SystemicError

T = TypeVar("T")


async def in_order(awaitables: Sequence[Awaitable[T]], limit: int | None = None) -> list[T]:
    """The awaitables' results, awaited concurrently (at most `limit` at a time); the first
    failure in their order is raised, once all have ended."""
    gate = asyncio.Semaphore(limit) if limit else None

    async def gated(awaitable: Awaitable[T]) -> T:
        if gate is None:
            return await awaitable
        async with gate:
            return await awaitable

    results = await asyncio.gather(*(gated(a) for a in awaitables), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
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
