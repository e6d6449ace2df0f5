"""Both index backends keep the same IndexCatalog / IndexStore contract.

Every test runs twice: on the local backend (SQLite in tmp_path) and on the Azure backend (the
real azure-search-documents SDK over HTTP against `tests/fakes/search_server.py`).

Invariants defended:
- An index is created once (a second create fails and keeps the first), opened only if it is a
  physical index, listed by name, deleted unless an alias points at it; names follow Azure's
  rules; a store on a deleted index refuses calls.
- An alias points at exactly one existing index, can be repointed, and shares the namespace of
  indexes: an alias cannot be opened or created as an index, nor an index named as an alias.
- upsert inserts or replaces whole documents by key, and re-upserting is idempotent; invalid
  documents or a key twice are refused before anything is written.
- merge sets item-wide fields on every chunk of that item only; prune and delete_item delete
  exactly the chunks they name; other items are never touched.
- indexed_state, drive_items, items_under, vectors and count read back what was written.
- Security trimming: a document is returned by search iff the reader's filter permits it (the
  reference semantics of `SecurityFilter.permits`), for text, vector and hybrid queries alike.

One legitimate difference, stated where it matters: Azure never returns fields marked
`retrievable: false`, so `documents()` on Azure lacks `group_ids` / `user_ids`; the security
fields are then checked through `search()` with filters.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from azure.core.credentials import AzureKeyCredential

from ingest.index.azure import AzureIndexCatalog
from ingest.index.base import (
    MIXED_VALUE,
    IndexAlreadyExists,
    IndexCatalog,
    IndexClosed,
    IndexContractError,
    IndexInUse,
    IndexNotFound,
    IndexStore,
    InvalidDocument,
    InvalidIndexName,
)
from ingest.index.local import LocalIndexCatalog
from ingest.index.schema import SECURITY_FIELDS
from ingest.models import IndexDoc, ItemRef, chunk_key, text_hash
from ingest.query import EVERYONE, SecurityFilter, security_filter
from ingest.retry import Retrier
from tests.fakes.clock import FakeClock
from tests.fakes.search_server import FakeSearchService

DIMS = 8
KEY = "test-key"
G1 = "11111111-1111-1111-1111-111111111111"
G2 = "22222222-2222-2222-2222-222222222222"
G3 = "33333333-3333-3333-3333-333333333333"
U1 = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"
U2 = "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb"
A = ItemRef("drive-a", "item-1")
B = ItemRef("drive-a", "item-2")
C = ItemRef("drive-b", "item-3")


def vector_for(text: str) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    return np.random.default_rng(seed).standard_normal(DIMS).tolist()


def make_doc(item: ItemRef, chunk_no: int, content: str = "shared words", *,
             groups: tuple[str, ...] = (G1,), users: tuple[str, ...] = (),
             dims: int = DIMS, **overrides: object) -> IndexDoc:
    vector = vector_for(content) if dims == DIMS else [0.5] * dims
    values: dict[str, object] = dict(
        id=chunk_key(item.parent_key, chunk_no), parent_key=item.parent_key, chunk_no=chunk_no,
        chunk_count=3, content=content, content_vector=vector,
        content_hash=text_hash(content), embedding_model="offline-8", title=f"Title {item.item_id}",
        url=f"https://contoso.example/{item.item_id}", path=f"/Shared Documents/{item.item_id}",
        site_id="site", site_name="Site", drive_id=item.drive_id, item_id=item.item_id,
        source_kind="file", content_type="application/pdf",
        last_modified="2026-03-04T10:00:00Z", page_start=1, page_end=2, content_tag="ctag-1",
        acl_hash="acl-1", group_ids=list(groups), user_ids=list(users))
    values.update(overrides)
    return IndexDoc(**values)  # type: ignore[arg-type]


@dataclass
class Backend:
    """A catalog under test, and the fake service behind it (Azure only)."""

    kind: str
    catalog: IndexCatalog
    fake: FakeSearchService | None = None

    @property
    def returns_security_fields(self) -> bool:
        """Whether documents() includes group_ids / user_ids (not on Azure: not retrievable)."""
        return self.kind == "local"


@pytest.fixture
def fake_service() -> Iterator[FakeSearchService]:
    with FakeSearchService(api_keys=[KEY]) as fake:
        yield fake


@pytest.fixture(params=["local", "azure"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "local":
        yield Backend("local", LocalIndexCatalog(tmp_path))
        return
    fake = request.getfixturevalue("fake_service")
    catalog = AzureIndexCatalog(fake.endpoint, AzureKeyCredential(KEY),
                                retrier=Retrier(clock=FakeClock()))
    yield Backend("azure", catalog, fake)
    await catalog.close()  # closes every store opened through it


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[IndexStore]:
    created = await backend.catalog.create_index("test-v1", DIMS)
    yield created
    await created.close()


async def keys(store: IndexStore) -> list[str]:
    return [str(d["id"]) for d in await store.documents()]


def comparable(document: dict[str, object], backend: Backend) -> dict[str, object]:
    """A document without its vector; without security fields where the backend hides them."""
    out = {k: v for k, v in document.items() if k != "content_vector"}
    if not backend.returns_security_fields:
        for name in SECURITY_FIELDS:
            out.pop(name, None)
    return out


# --- catalog -------------------------------------------------------------------------------

async def test_backends_satisfy_the_protocols(backend: Backend, store: IndexStore) -> None:
    assert isinstance(backend.catalog, IndexCatalog)
    assert isinstance(store, IndexStore) and store.name == "test-v1"


async def test_create_open_list(backend: Backend) -> None:
    catalog = backend.catalog
    assert await catalog.list_indexes() == []
    await catalog.create_index("docs-v2", DIMS)
    await catalog.create_index("docs-v1", 16)
    assert await catalog.list_indexes() == ["docs-v1", "docs-v2"]
    opened = await catalog.open_index("docs-v1")
    assert opened.name == "docs-v1" and opened.dimensions == 16  # type: ignore[attr-defined]


async def test_create_refuses_an_existing_index_and_keeps_it(backend: Backend,
                                                            store: IndexStore) -> None:
    await store.upsert([make_doc(A, 0)])
    with pytest.raises(IndexAlreadyExists):
        await backend.catalog.create_index("test-v1", 16)
    reopened = await backend.catalog.open_index("test-v1")
    assert reopened.dimensions == DIMS and await reopened.count() == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["Docs", "docs_v1", "-docs", "docs-", "d", "../etc", "a/b"])
async def test_invalid_names_are_refused(backend: Backend, name: str) -> None:
    with pytest.raises(InvalidIndexName):
        await backend.catalog.create_index(name, DIMS)
    with pytest.raises(InvalidIndexName):
        await backend.catalog.open_index(name)


async def test_bad_dimensions_create_nothing(backend: Backend) -> None:
    with pytest.raises(IndexContractError):
        await backend.catalog.create_index("docs-v1", 5000)
    assert await backend.catalog.list_indexes() == []


async def test_open_or_delete_a_missing_index_is_not_found(backend: Backend) -> None:
    with pytest.raises(IndexNotFound):
        await backend.catalog.open_index("nope-v1")
    with pytest.raises(IndexNotFound):
        await backend.catalog.delete_index("nope-v1")


async def test_deleting_an_index_closes_its_stores(backend: Backend, store: IndexStore) -> None:
    await backend.catalog.delete_index("test-v1")
    assert await backend.catalog.list_indexes() == []
    with pytest.raises(IndexClosed):
        await store.count()
    with pytest.raises(IndexNotFound):
        await backend.catalog.open_index("test-v1")


# --- aliases -------------------------------------------------------------------------------

async def test_alias_set_repoint_and_refuse_deleting_its_target(backend: Backend) -> None:
    catalog = backend.catalog
    await catalog.create_index("docs-v1", DIMS)
    await catalog.create_index("docs-v2", DIMS)
    assert await catalog.get_alias("docs") is None
    await catalog.set_alias("docs", "docs-v1")
    assert await catalog.get_alias("docs") == "docs-v1"
    with pytest.raises(IndexInUse):
        await catalog.delete_index("docs-v1")
    await catalog.set_alias("docs", "docs-v2")
    assert await catalog.get_alias("docs") == "docs-v2"
    await catalog.delete_index("docs-v1")
    assert await catalog.list_indexes() == ["docs-v2"]
    with pytest.raises(IndexInUse):
        await catalog.delete_index("docs-v2")


async def test_alias_must_point_at_an_existing_index(backend: Backend) -> None:
    with pytest.raises(IndexNotFound):
        await backend.catalog.set_alias("docs", "missing-v1")
    assert await backend.catalog.get_alias("docs") is None


async def test_aliases_and_indexes_share_one_namespace(backend: Backend,
                                                       store: IndexStore) -> None:
    catalog = backend.catalog
    await catalog.set_alias("docs", "test-v1")
    with pytest.raises(IndexNotFound):
        await catalog.open_index("docs")  # an alias is not a physical index
    with pytest.raises(IndexAlreadyExists):
        await catalog.create_index("docs", DIMS)
    with pytest.raises(IndexInUse):
        await catalog.set_alias("test-v1", "test-v1")
    with pytest.raises(InvalidIndexName):
        await catalog.set_alias("Bad_Alias", "test-v1")


# --- writes --------------------------------------------------------------------------------

async def test_upsert_then_documents_returns_every_field(backend: Backend,
                                                         store: IndexStore) -> None:
    doc = make_doc(A, 0, groups=(G2, G1), users=(U1,))
    await store.upsert([make_doc(A, 1), doc])
    documents = await store.documents()
    assert [d["id"] for d in documents] == sorted([doc.id, chunk_key(A.parent_key, 1)])
    stored, expected = documents[0], doc.as_fields()
    assert np.allclose(stored["content_vector"], expected["content_vector"], atol=1e-6)
    assert comparable(stored, backend) == comparable(expected, backend)
    if backend.returns_security_fields:
        assert stored["group_ids"] == [G2, G1] and stored["user_ids"] == [U1]
    else:  # Azure: not retrievable, so absent; trimming is checked through search below
        assert not set(SECURITY_FIELDS) & set(stored)


async def test_upsert_replaces_by_key(store: IndexStore) -> None:
    await store.upsert([make_doc(A, 0, "old text", groups=(G1,))])
    await store.upsert([make_doc(A, 0, "new text", groups=(G2,))])
    (doc,) = await store.documents()
    assert doc["content"] == "new text"
    assert await store.search("old", None, security=None) == []
    assert await store.search("new", None, security=security_filter(None, [G1])) == []
    assert len(await store.search("new", None, security=security_filter(None, [G2]))) == 1


async def test_re_upsert_is_idempotent(backend: Backend, store: IndexStore) -> None:
    docs = [make_doc(A, 0), make_doc(A, 1), make_doc(B, 0, groups=(G2,))]
    await store.upsert(docs)
    first = [comparable(d, backend) for d in await store.documents()]
    await store.upsert(docs)
    assert [comparable(d, backend) for d in await store.documents()] == first
    assert await store.count() == 3


async def test_invalid_documents_and_repeated_keys_write_nothing(store: IndexStore) -> None:
    with pytest.raises(InvalidDocument):
        await store.upsert([make_doc(A, 0), make_doc(A, 1, content_vector=[0.0] * (DIMS - 1))])
    with pytest.raises(InvalidDocument):
        await store.upsert([make_doc(A, 0), make_doc(A, 0)])
    with pytest.raises(InvalidDocument):
        await store.upsert([make_doc(A, 0, id="_leading-underscore")])
    assert await store.count() == 0


async def test_merge_sets_fields_on_every_chunk_of_the_item_only(store: IndexStore) -> None:
    await store.upsert([make_doc(A, 0), make_doc(A, 1), make_doc(B, 0)])
    await store.merge(A, {"title": "Renamed", "path": "/Moved/item-1"})
    by_key = {d["id"]: d for d in await store.documents()}
    for n in (0, 1):
        assert by_key[chunk_key(A.parent_key, n)]["title"] == "Renamed"
        assert by_key[chunk_key(A.parent_key, n)]["path"] == "/Moved/item-1"
    assert by_key[chunk_key(B.parent_key, 0)]["title"] == "Title item-2"


async def test_merge_of_security_fields_changes_who_finds_the_item(store: IndexStore) -> None:
    await store.upsert([make_doc(A, 0, "budget"), make_doc(A, 1, "budget")])
    assert len(await store.search("budget", None, security=security_filter(None, [G1]))) == 2
    await store.merge(A, {"group_ids": [G2], "user_ids": [U1], "acl_hash": "acl-2"})
    assert await store.search("budget", None, security=security_filter(None, [G1])) == []
    assert len(await store.search("budget", None, security=security_filter(None, [G2]))) == 2
    assert len(await store.search("budget", None, security=security_filter(U1, []))) == 2
    assert (await store.indexed_state([A]))[A].acl_hash == "acl-2"


async def test_merge_on_an_item_without_chunks_is_a_no_op(store: IndexStore) -> None:
    await store.upsert([make_doc(B, 0)])
    await store.merge(A, {"title": "Nothing"})
    assert await keys(store) == [chunk_key(B.parent_key, 0)]


@pytest.mark.parametrize("fields", [{"content": "x"}, {"chunk_no": 3}, {"nope": 1},
                                    {"group_ids": None}])
async def test_merge_refuses_per_chunk_unknown_and_unknown_acl_fields(
        store: IndexStore, fields: dict[str, object]) -> None:
    await store.upsert([make_doc(A, 0)])
    with pytest.raises(InvalidDocument):
        await store.merge(A, fields)


async def test_prune_deletes_only_the_items_chunks_not_kept(store: IndexStore) -> None:
    await store.upsert([make_doc(A, n) for n in range(3)] + [make_doc(B, 0)])
    await store.prune(A, {chunk_key(A.parent_key, 0), chunk_key(A.parent_key, 2), "other-key"})
    assert await keys(store) == sorted([chunk_key(A.parent_key, 0), chunk_key(A.parent_key, 2),
                                        chunk_key(B.parent_key, 0)])
    with pytest.raises(IndexContractError):
        await store.prune(A, chunk_key(A.parent_key, 0))


async def test_delete_item_removes_all_its_chunks(store: IndexStore) -> None:
    await store.upsert([make_doc(A, n) for n in range(3)] + [make_doc(B, 0)])
    await store.delete_item(A)
    await store.delete_item(A)  # a no-op the second time
    assert await keys(store) == [chunk_key(B.parent_key, 0)]


# --- reads ---------------------------------------------------------------------------------

async def test_indexed_state_is_the_manifest(store: IndexStore) -> None:
    await store.upsert([make_doc(A, 0, "one"), make_doc(A, 1, "two"), make_doc(B, 0)])
    state = await store.indexed_state([A, C])
    assert set(state) == {A}
    manifest = state[A]
    assert manifest.chunks == {chunk_key(A.parent_key, 0): text_hash("one"),
                               chunk_key(A.parent_key, 1): text_hash("two")}
    assert (manifest.content_tag, manifest.acl_hash, manifest.title) == \
        ("ctag-1", "acl-1", "Title item-1")
    assert manifest.ancestor_ids == ()
    assert manifest.last_modified == "2026-03-04T10:00:00Z"


async def test_indexed_state_reports_disagreeing_chunks_as_mixed(store: IndexStore) -> None:
    await store.upsert([make_doc(A, 0), make_doc(A, 1, acl_hash="acl-2", title="Other")])
    state = (await store.indexed_state([A]))[A]
    assert state.acl_hash == MIXED_VALUE and state.title == MIXED_VALUE
    assert state.content_tag == "ctag-1"


async def test_indexed_state_reads_many_items(store: IndexStore) -> None:
    items = [ItemRef("drive-a", f"bulk-{i}") for i in range(120)]  # several queries on Azure
    await store.upsert([make_doc(item, n) for item in items for n in range(2)])
    state = await store.indexed_state(items + [B])
    assert set(state) == set(items) and all(len(s.chunks) == 2 for s in state.values())


async def test_drive_items_and_count(store: IndexStore) -> None:
    await store.upsert([make_doc(A, 0), make_doc(A, 1), make_doc(B, 0), make_doc(C, 0)])
    assert await store.drive_items("drive-a") == {A, B}
    assert await store.drive_items("drive-b") == {C}
    assert await store.drive_items("drive-'z") == set()
    assert await store.count() == 4
    assert await store.count(drive_id="drive-a") == 3
    assert await store.count(drive_id="drive-z") == 0


async def test_items_under_finds_the_items_below_a_folder(store: IndexStore) -> None:
    await store.upsert([make_doc(A, 0, ancestor_ids=["root", "f1"]),
                        make_doc(A, 1, ancestor_ids=["root", "f1"]),
                        make_doc(B, 0, ancestor_ids=["root", "f1", "f'2"]),
                        make_doc(C, 0, ancestor_ids=["root", "f1"])])
    assert await store.items_under("drive-a", "f1") == {A, B}
    assert await store.items_under("drive-a", "f'2") == {B}
    assert await store.items_under("drive-b", "f1") == {C}
    assert await store.items_under("drive-a", "elsewhere") == set()
    await store.merge(B, {"ancestor_ids": ["root", "f3"]})  # moved out of f1
    assert await store.items_under("drive-a", "f1") == {A}
    assert (await store.indexed_state([B]))[B].ancestor_ids == ("root", "f3")


async def test_vectors_returns_stored_vectors_of_existing_keys(store: IndexStore) -> None:
    doc = make_doc(A, 0)
    await store.upsert([doc])
    got = await store.vectors([doc.id, chunk_key(B.parent_key, 0), doc.id, "not,a key"])
    assert set(got) == {doc.id}
    assert got[doc.id] == np.asarray(doc.content_vector, dtype=np.float32).tolist()


async def test_a_closed_store_refuses_calls(store: IndexStore) -> None:
    await store.close()
    await store.close()
    with pytest.raises(IndexClosed):
        await store.count()
    with pytest.raises(IndexClosed):
        await store.upsert([make_doc(A, 0)])


# --- search and security trimming --------------------------------------------------------

# item -> (group_ids, user_ids): who may read it
ACLS: dict[ItemRef, tuple[tuple[str, ...], tuple[str, ...]]] = {
    ItemRef("drive-s", "g1-only"): ((G1,), ()),
    ItemRef("drive-s", "g2-only"): ((G2,), ()),
    ItemRef("drive-s", "g1-and-g2"): ((G1, G2), ()),
    ItemRef("drive-s", "user-1"): ((), (U1,)),
    ItemRef("drive-s", "g3-or-user-2"): ((G3,), (U2,)),
    ItemRef("drive-s", "everyone"): ((EVERYONE,), ()),
    ItemRef("drive-s", "nobody"): ((), ()),
}
READERS = {
    "g1": security_filter(None, [G1]),
    "g2-g3": security_filter(None, [G2, G3]),
    "user-1": security_filter(U1, []),
    "user-2-with-g1": security_filter(U2, [G1]),
    "user-1-everyone": security_filter(U1, [], principal_values=[EVERYONE]),
    "nobody": security_filter(None, []),
}


async def _secured(store: IndexStore) -> dict[str, IndexDoc]:
    docs = {}
    for item, (groups, users) in ACLS.items():
        doc = make_doc(item, 0, f"quarterly report {item.item_id}", groups=groups, users=users)
        docs[doc.id] = doc
    await store.upsert(list(docs.values()))
    return docs


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("query", ["text", "vector", "hybrid"])
async def test_search_returns_a_document_iff_the_reader_is_permitted(
        store: IndexStore, reader: str, query: str) -> None:
    docs = await _secured(store)
    security: SecurityFilter = READERS[reader]
    expected = {k for k, d in docs.items() if security.permits(d.group_ids, d.user_ids)}
    text = "" if query == "vector" else "quarterly"
    vector = None if query == "text" else vector_for("quarterly report g1-only")
    hits = await store.search(text, vector, security=security, top=20)
    assert {h.key for h in hits} == expected
    assert all(h.parent_key == docs[h.key].parent_key and h.title for h in hits)


async def test_untrimmed_search_sees_everything_and_ranks_best_first(store: IndexStore) -> None:
    docs = await _secured(store)
    assert {h.key for h in await store.search("quarterly", None, security=None, top=20)} == \
        set(docs)
    target = make_doc(ItemRef("drive-s", "user-1"), 0)
    best = await store.search("", vector_for("quarterly report user-1"), security=None, top=1)
    assert [h.key for h in best] == [target.id]
    hybrid = await store.search("user", vector_for("quarterly report user-1"), security=None)
    assert hybrid[0].key == target.id
    assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True)


async def test_search_argument_rules(store: IndexStore) -> None:
    await store.upsert([make_doc(A, 0, "alpha beta")])
    assert await store.search("", None, security=None) == []
    assert await store.search("  ?! ", None, security=None) == []
    assert len(await store.search('alpha +(beta) "- * ~', None, security=None)) == 1
    for bad_top in (0, -1, True):
        with pytest.raises(IndexContractError):
            await store.search("alpha", None, security=None, top=bad_top)
    with pytest.raises(IndexContractError):
        await store.search("alpha", [0.1] * (DIMS + 1), security=None)
    with pytest.raises(IndexContractError):
        await store.search("alpha", [float("nan")] * DIMS, security=None)
