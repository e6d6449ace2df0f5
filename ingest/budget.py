"""Rate budgets: spend a service's quota at the pace it allows instead of collecting 429s.

    TokenBucket       an async token bucket with an injectable clock (ingest.retry.Clock)
    GraphBudget       Microsoft Graph resource units (RU) per minute, costed per request kind
    EmbeddingBudget   embedding tokens per minute (TPM) and requests per minute (RPM)

A budget is acquired *before* a request is sent, for every attempt (throttled calls count
toward the service's limits too). It only paces: a 429 or 503 that comes anyway is still
honoured by the one retry policy (`ingest.retry`, Retry-After first) and counted in the report.

The buckets are lock-free reservations: `acquire` takes its amount at once (the level may go
below zero) and sleeps until the debt it left is repaid at the refill rate, so waiters are
served in arrival order and a request bigger than the bucket still goes through, just later.
They belong to one event loop; they are not thread-safe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from ingest.config import BudgetSettings
from ingest.retry import Clock

# Resource units per Graph request (SharePoint "avoid getting throttled" guide, resource unit
# table; platform-facts §5). Requests inside a $batch are costed individually.
RU_SINGLE_REQUEST = 1  # single item GET, delta *with* a token, file download
RU_MULTI_ITEM = 2  # multi-item queries (listings), delta *without* a token, create/update/delete
RU_PERMISSIONS = 5  # any permission operation, `$expand=permissions` included

# Per-app, per-tenant RU per minute by licence count (same guide): (up to licences, RU/min).
GRAPH_RU_TIERS: tuple[tuple[int | None, int], ...] = (
    (1_000, 1_200),
    (5_000, 2_400),
    (15_000, 3_600),
    (50_000, 4_800),
    (None, 6_000),
)
DEFAULT_GRAPH_RU_PER_MINUTE = GRAPH_RU_TIERS[0][1]
# A starting point for embeddings; the real quota is per deployment, in TPM (platform-facts
# §13: one Q&A answer cites 350K TPM as a default). Set both to the deployment's quota.
DEFAULT_EMBEDDING_TPM = 350_000
DEFAULT_EMBEDDING_RPM = 3_000

# What each kind of Graph request costs, by the name GraphClient gives it. A name ending in
# `_list` is a multi-item query (a collection, one page of it per request).
GRAPH_REQUEST_RU: Mapping[str, int] = {
    "delta": RU_SINGLE_REQUEST,  # following a delta or next link: a token is in the URL
    "delta_initial": RU_MULTI_ITEM,  # the first page of a full enumeration
    "item": RU_SINGLE_REQUEST,
    "download": RU_SINGLE_REQUEST,
    "site": RU_SINGLE_REQUEST,
    "page": RU_SINGLE_REQUEST,
    "user": RU_SINGLE_REQUEST,
    "permissions": RU_PERMISSIONS,
    "site_list": RU_MULTI_ITEM,
    "drive_list": RU_MULTI_ITEM,
    "page_list": RU_MULTI_ITEM,
    "user_list": RU_MULTI_ITEM,
    "children_list": RU_MULTI_ITEM,
}


def graph_request_cost(kind: str) -> int:
    """The RU one Graph request of `kind` costs; an unknown kind is costed as a multi-item query."""
    return GRAPH_REQUEST_RU.get(kind, RU_MULTI_ITEM)


def ru_per_minute_for_licenses(licenses: int) -> int:
    """The documented per-minute RU limit of a tenant with this many licences."""
    for ceiling, per_minute in GRAPH_RU_TIERS:
        if ceiling is None or licenses <= ceiling:
            return per_minute
    return GRAPH_RU_TIERS[-1][1]  # pragma: no cover - the last tier has no ceiling


class TokenBucket:
    """`capacity` tokens, refilled at `rate_per_s`; `acquire(n)` waits until n may be spent.

    Promises: over any span of t seconds, at most `capacity + rate_per_s * t` tokens are
    granted; grants happen in call order; nothing is refused, only delayed.
    """

    def __init__(self, rate_per_s: float, capacity: float, *, clock: Clock | None = None) -> None:
        if rate_per_s <= 0 or capacity <= 0:
            raise ValueError("a token bucket needs a positive rate and capacity")
        self.rate_per_s = rate_per_s
        self.capacity = capacity
        self.clock = clock or Clock()
        self._level = capacity
        self._stamp = self.clock.monotonic()
        self.granted = 0.0  # tokens handed out so far
        self.waited_s = 0.0  # summed over callers

    def _refill(self) -> None:
        now = self.clock.monotonic()
        self._level = min(self.capacity, self._level + (now - self._stamp) * self.rate_per_s)
        self._stamp = now

    def reserve(self, amount: float) -> float:
        """Take `amount` now and return how many seconds the caller must wait before using it."""
        if amount < 0:
            raise ValueError("cannot acquire a negative amount")
        self._refill()
        self._level -= amount
        self.granted += amount
        return max(0.0, -self._level / self.rate_per_s)

    def refund(self, amount: float) -> None:
        """Give back a reservation that was not used (its caller was cancelled)."""
        self._refill()
        self._level = min(self.capacity, self._level + amount)
        self.granted -= amount

    async def acquire(self, amount: float) -> float:
        """Wait until `amount` tokens may be spent and spend them; returns the seconds waited."""
        delay = self.reserve(amount)
        if delay > 0:
            try:
                await self.clock.sleep(delay)
            except asyncio.CancelledError:
                self.refund(amount)
                raise
            self.waited_s += delay
        return delay


def per_minute_bucket(per_minute: float, burst_s: float, clock: Clock | None) -> TokenBucket:
    """A bucket that refills `per_minute` a minute and holds `burst_s` seconds' worth."""
    rate = per_minute / 60.0
    return TokenBucket(rate, max(rate * burst_s, 1.0), clock=clock)


@dataclass
class GraphBudget:
    """Resource units per minute for one app in one tenant (all its Graph calls share it)."""

    bucket: TokenBucket

    @classmethod
    def per_minute(cls, ru_per_minute: float, *, burst_s: float = 60.0, clock: Clock | None = None) -> GraphBudget:
        """A budget refilling `ru_per_minute`, of which `burst_s` seconds' worth may go at once."""
        return cls(per_minute_bucket(ru_per_minute, burst_s, clock))

    @property
    def spent(self) -> int:
        """RU granted so far."""
        return round(self.bucket.granted)

    @property
    def waited_s(self) -> float:
        """Seconds requests spent waiting for RU, summed."""
        return self.bucket.waited_s

    async def acquire(self, kind: str, count: int = 1) -> int:
        """Wait until `count` requests of `kind` may be sent; returns the RU they cost."""
        cost = graph_request_cost(kind) * count
        await self.bucket.acquire(cost)
        return cost


@dataclass
class EmbeddingBudget:
    """Tokens and requests per minute of one embedding deployment; either may be unlimited."""

    tokens: TokenBucket | None
    requests: TokenBucket | None
    waited_s: float = 0.0

    @classmethod
    def per_minute(
        cls,
        tokens_per_minute: float | None,
        requests_per_minute: float | None,
        *,
        burst_s: float = 10.0,
        clock: Clock | None = None,
    ) -> EmbeddingBudget:
        """TPM and RPM buckets holding `burst_s` seconds' worth each (None: that one unlimited)."""
        return cls(
            per_minute_bucket(tokens_per_minute, burst_s, clock) if tokens_per_minute else None,
            per_minute_bucket(requests_per_minute, burst_s, clock) if requests_per_minute else None,
        )

    async def acquire(self, tokens: int) -> float:
        """Wait until one request of `tokens` input tokens may be sent; returns the seconds waited.

        Both reservations are taken at once and the wait is the longer of the two, so a
        request never holds one budget while queueing for the other.
        """
        buckets = [(b, amount) for b, amount in ((self.tokens, tokens), (self.requests, 1)) if b is not None]
        if not buckets:
            return 0.0
        delay = max(bucket.reserve(amount) for bucket, amount in buckets)
        if delay > 0:
            clock = buckets[0][0].clock
            try:
                await clock.sleep(delay)
            except asyncio.CancelledError:
                for bucket, amount in buckets:
                    bucket.refund(amount)
                raise
            self.waited_s += delay
        return delay


def graph_budget(settings: BudgetSettings, *, clock: Clock | None = None) -> GraphBudget | None:
    """The Graph budget the settings ask for; None when pacing is switched off."""
    if settings.graph_ru_per_minute is None:
        return None
    return GraphBudget.per_minute(settings.graph_ru_per_minute, burst_s=settings.graph_burst_seconds, clock=clock)


def embedding_budget(settings: BudgetSettings, *, clock: Clock | None = None) -> EmbeddingBudget | None:
    """The embedding budget the settings ask for; None when both TPM and RPM are unlimited."""
    tpm, rpm = settings.embedding_tokens_per_minute, settings.embedding_requests_per_minute
    if tpm is None and rpm is None:
        return None
    return EmbeddingBudget.per_minute(tpm, rpm, burst_s=settings.embedding_burst_seconds, clock=clock)
