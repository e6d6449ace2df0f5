"""The Azure backend writes within the service's limits and never loses a document silently.

Real azure-search-documents SDK over HTTP against `tests/fakes/search_server.py`.

Invariants defended:
- Indexing requests carry at most 1,000 actions and at most 16 MB of JSON, measured exactly as
  the SDK serialises them; big documents force byte-based cuts, and batches are packed (not
  split needlessly). A 413 anyway (a lower limit) splits the batch and still writes it all.
- Every per-document result is checked: documents answered 409, 422 or 503 are resent until
  indexed; a document that keeps failing (or fails with a non-retryable status) is named in the
  raised `IndexWriteFailed`, and the other documents are written.
- Whole requests answered 429/503 are retried with the `Retrier`, honouring Retry-After, and
  azure-core does not retry on its own (one retry loop, not two stacked).
- The index definition the service receives is `load_index_definition(...)`, field by field.
- Listings page past 1,000 results and past the service's largest `skip`.
- Credentials: API key or Entra token (sync or async credential), bearer allowed over http only
  on loopback; a refused credential is an AuthError.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from azure.core.credentials import AccessToken, AzureKeyCredential

from ingest.errors import AuthError, ConfigError, IndexUnavailable
from ingest.index.azure import (
    SEARCH_BATCH_MAX_ACTIONS,
    SEARCH_BATCH_MAX_BYTES,
    AzureIndexCatalog,
    AzureIndexStore,
    IndexWriteFailed,
)
from ingest.index.azure_transport import action_bytes, cut_batches
from ingest.index.schema import load_index_definition
from ingest.models import ItemRef, chunk_key
from ingest.retry import Retrier, RetryPolicy
from tests.fakes.search_server import FakeSearchService
from tests.integration.test_index_contract import DIMS, FakeClock, make_doc

KEY = "test-key"


@pytest.fixture
def fake() -> Iterator[FakeSearchService]:
    with FakeSearchService(api_keys=[KEY]) as service:
        yield service


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def catalog(fake: FakeSearchService, clock: FakeClock) -> AsyncIterator[AzureIndexCatalog]:
    retrier = Retrier(policy=RetryPolicy(max_attempts=4), clock=clock)
    created = AzureIndexCatalog(fake.endpoint, AzureKeyCredential(KEY), retrier=retrier)
    yield created
    await created.close()


@pytest.fixture
async def store(catalog: AzureIndexCatalog) -> AzureIndexStore:
    return await catalog.create_index("test-v1", DIMS)


def chunks_of(count: int, *, per_item: int = 50, content: str = "chunk text") -> list[Any]:
    return [make_doc(ItemRef("drive-a", f"item-{n // per_item}"), n % per_item, content)
            for n in range(count)]


# --- batch limits --------------------------------------------------------------------------

async def test_2500_chunks_go_up_in_batches_within_the_limits(
        fake: FakeSearchService, store: AzureIndexStore) -> None:
    docs = chunks_of(2500)
    await store.upsert(docs)
    sent = fake.index_requests()
    assert len(sent) >= 3
    assert all(r.status == 200 for r in sent)
    assert max(r.action_count or 0 for r in sent) <= SEARCH_BATCH_MAX_ACTIONS
    assert max(r.body_size for r in sent) <= SEARCH_BATCH_MAX_BYTES
    assert sorted(k for r in sent for k in r.keys) == sorted(d.id for d in docs)
    assert await store.count() == 2500


async def test_big_chunks_are_cut_by_bytes_and_packed(fake: FakeSearchService,
                                                      store: AzureIndexStore) -> None:
    big = "x" * (2**20)  # 1 MiB of text per chunk: 40 chunks cannot go in one request
    await store.upsert(chunks_of(40, content=big))
    sent = fake.index_requests()
    assert len(sent) == 3 and all(r.status == 200 for r in sent)
    assert all(r.body_size <= SEARCH_BATCH_MAX_BYTES for r in sent)
    assert all((r.action_count or 0) < SEARCH_BATCH_MAX_ACTIONS for r in sent)
    assert max(r.body_size for r in sent) > SEARCH_BATCH_MAX_BYTES - 2**20 - 4096  # packed
    assert await store.count() == 40


def test_batch_sizes_are_measured_as_the_sdk_serialises_them() -> None:
    from azure.search.documents._utils.model_base import SdkJSONEncoder  # only to cross-check
    from azure.search.documents.models import IndexAction, IndexDocumentsBatch

    actions = [{"@search.action": "mergeOrUpload", "id": f"k{i}", "content": "é\"\u2028" * i,
                "content_vector": [0.1, 1e-7, -3.0], "title": None} for i in range(50)]
    for batch in cut_batches(actions, max_actions=7, max_bytes=2000):
        sdk = json.dumps(IndexDocumentsBatch(actions=[IndexAction(a) for a in batch]),
                         cls=SdkJSONEncoder, exclude_readonly=True).encode()
        assert len(sdk) == len(json.dumps({"value": batch}))
        assert len(sdk) <= 2000 and len(batch) <= 7
    assert action_bytes(actions[3]) == len(json.dumps(actions[3]).encode())


async def test_a_document_over_the_request_limit_is_refused_before_anything_is_sent(
        fake: FakeSearchService, store: AzureIndexStore) -> None:
    from ingest.index.base import InvalidDocument

    with pytest.raises(InvalidDocument):
        await store.upsert(chunks_of(2) + chunks_of(1, content="y" * SEARCH_BATCH_MAX_BYTES))
    assert fake.index_requests() == []


async def test_a_413_splits_the_batch_and_writes_it_all(fake: FakeSearchService,
                                                        store: AzureIndexStore) -> None:
    fake.max_bytes = 20_000  # a service with a lower limit than ours
    docs = chunks_of(60)
    await store.upsert(docs)
    statuses = [r.status for r in fake.index_requests()]
    assert 413 in statuses and statuses[-1] == 200
    assert await store.count() == 60


# --- per-document results ------------------------------------------------------------------

async def test_retryable_per_document_failures_end_indexed(
        fake: FakeSearchService, store: AzureIndexStore, clock: FakeClock) -> None:
    docs = chunks_of(30)
    fake.inject_207 = {docs[1].id: (409, 2), docs[5].id: (422, 1), docs[9].id: (503, 3)}
    await store.upsert(docs)
    assert await store.count() == 30
    sent = fake.index_requests()
    assert [r.status for r in sent] == [207, 207, 207, 200]
    # Only the failures are resent, each until it succeeds.
    assert [set(r.keys) for r in sent[1:]] == [
        {docs[1].id, docs[5].id, docs[9].id}, {docs[1].id, docs[9].id}, {docs[9].id}]
    assert len(clock.sleeps) == 3  # the Retrier's backoff, through its clock


async def test_a_permanently_failing_key_is_reported_never_dropped(
        fake: FakeSearchService, store: AzureIndexStore) -> None:
    docs = chunks_of(20)
    fake.inject_207 = {docs[3].id: 503, docs[7].id: 400}
    with pytest.raises(IndexWriteFailed) as raised:
        await store.upsert(docs)
    assert set(raised.value.failed) == {docs[3].id, docs[7].id}
    assert raised.value.failed[docs[3].id][0] == 503 and raised.value.failed[docs[7].id][0] == 400
    assert docs[3].id in str(raised.value) and docs[7].id in str(raised.value)
    assert isinstance(raised.value, IndexUnavailable)
    assert await store.count() == 18
    resent = [k for r in fake.index_requests()[1:] for k in r.keys]
    assert set(resent) == {docs[3].id}  # 400 is final at once; 503 is retried to the limit
    assert len(resent) == 3  # max_attempts=4: one first try and three resends


async def test_merge_and_delete_check_per_document_results(fake: FakeSearchService,
                                                           store: AzureIndexStore) -> None:
    item = ItemRef("drive-a", "item-0")
    await store.upsert(chunks_of(5))
    fake.inject_207 = {chunk_key(item.parent_key, 2): 422}
    with pytest.raises(IndexWriteFailed) as raised:
        await store.merge(item, {"title": "Renamed"})
    assert set(raised.value.failed) == {chunk_key(item.parent_key, 2)}
    with pytest.raises(IndexWriteFailed):
        await store.delete_item(item)
    assert {str(d["id"]) for d in await store.documents()} == {chunk_key(item.parent_key, 2)}


# --- whole-request throttling --------------------------------------------------------------

@pytest.mark.parametrize("status", [429, 503])
async def test_throttled_requests_are_retried_after_retry_after(
        fake: FakeSearchService, store: AzureIndexStore, clock: FakeClock, status: int) -> None:
    fake.throttle_status, fake.throttle_next, fake.retry_after = status, 2, "7"
    await store.upsert(chunks_of(10))
    assert [r.status for r in fake.index_requests()] == [status, status, 200]  # no SDK retries
    assert clock.sleeps == [7.0, 7.0]
    assert await store.count() == 10


async def test_throttling_that_never_ends_is_index_unavailable(
        fake: FakeSearchService, store: AzureIndexStore) -> None:
    fake.throttle_next, fake.retry_after = 100, "0"
    with pytest.raises(IndexUnavailable, match="429"):
        await store.upsert(chunks_of(3))
    assert len(fake.index_requests()) == 4  # max_attempts, not max_attempts x SDK retries


# --- definition, paging, credentials -------------------------------------------------------

async def test_the_service_receives_the_index_definition_field_by_field(
        fake: FakeSearchService, catalog: AzureIndexCatalog) -> None:
    await catalog.create_index("docs-v3", 1536)
    expected = load_index_definition("docs-v3", 1536)
    received = fake.definitions["docs-v3"]
    assert [f["name"] for f in received["fields"]] == [f["name"] for f in expected["fields"]]
    for got, want in zip(received["fields"], expected["fields"], strict=True):
        assert got == want, got["name"]
    security = {f["name"]: f for f in received["fields"] if f["name"] in ("group_ids", "user_ids")}
    assert all(f["retrievable"] is False and f["filterable"] is True for f in security.values())
    vector = next(f for f in received["fields"] if f["name"] == "content_vector")
    assert vector["dimensions"] == 1536 and vector["vectorSearchProfile"] == "hnsw-profile"
    assert received["vectorSearch"] == expected["vectorSearch"]
    assert received["semantic"] == expected["semantic"]
    assert received == expected


async def test_listings_page_past_1000_results_and_the_skip_limit(
        fake: FakeSearchService, clock: FakeClock) -> None:
    fake.max_skip = 1000  # documents 2,001 onwards are out of reach of `skip` alone
    catalog = AzureIndexCatalog(fake.endpoint, AzureKeyCredential(KEY),
                                retrier=Retrier(clock=clock), skip_limit=1000)
    store = await catalog.create_index("test-v1", DIMS)
    docs = chunks_of(2300, per_item=25) + chunks_of(1200, per_item=1200, content="one big item")
    docs[-1200:] = [make_doc(ItemRef("drive-b", "big"), n) for n in range(1200)]
    await store.upsert(docs)
    assert len(await store.documents()) == 3500
    assert len(await store.drive_items("drive-a")) == 92
    state = await store.indexed_state([ItemRef("drive-b", "big")])
    assert len(state[ItemRef("drive-b", "big")].chunks) == 1200
    await store.delete_item(ItemRef("drive-b", "big"))
    assert await store.count() == 2300 and await store.count(drive_id="drive-b") == 0
    await catalog.close()


class SyncToken:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        assert scopes == ("https://search.azure.com/.default",)
        return AccessToken("test-token", 4_102_444_800)


class AsyncToken:
    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        assert scopes == ("https://search.azure.com/.default",)
        return AccessToken("test-token", 4_102_444_800)

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("credential", [SyncToken(), AsyncToken()], ids=["sync", "async"])
async def test_an_entra_token_works_over_loopback_http(fake: FakeSearchService,
                                                       credential: Any) -> None:
    catalog = AzureIndexCatalog(fake.endpoint, credential)
    store = await catalog.create_index("test-v1", DIMS)
    await store.upsert(chunks_of(3))
    assert await store.count() == 3
    assert {r.headers.get("authorization") for r in fake.requests} == {"Bearer test-token"}
    await catalog.close()


async def test_a_refused_credential_is_an_auth_error(fake: FakeSearchService) -> None:
    catalog = AzureIndexCatalog(fake.endpoint, AzureKeyCredential("wrong"))
    with pytest.raises(AuthError) as raised:
        await catalog.list_indexes()
    assert "wrong" not in str(raised.value)
    await catalog.close()


def test_plain_http_is_refused_off_loopback() -> None:
    with pytest.raises(ConfigError):
        AzureIndexCatalog("http://contoso.search.windows.net", AzureKeyCredential(KEY))
    with pytest.raises(ConfigError):
        AzureIndexCatalog("https://contoso.search.windows.net", object())  # type: ignore[arg-type]
