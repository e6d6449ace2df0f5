"""The local index keeps the IndexStore promises the pipeline relies on.

Invariants defended:
- upsert inserts or replaces whole documents by key; a batch with any invalid document (or a
  key twice) writes nothing.
- merge sets item-wide fields on every chunk of that item and nothing else; a merge of
  group_ids/user_ids changes who can find the item at once.
- prune deletes exactly the item's chunks not kept; delete_item deletes all of them; other
  items are never touched.
- indexed_state is the manifest read back from the chunks (absent items absent, chunks with
  disagreeing values reported as MIXED_VALUE so the pipeline rewrites them).
- documents() returns every field, security fields included, sorted by key; vectors() returns
  the stored vectors of existing keys; count() and drive_items() agree with what was written.
- Writes made through another connection to the same file are seen by searches (no stale cache).
- A closed store refuses calls; an unreadable file raises IndexUnavailable.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from ingest.errors import IndexUnavailable
from ingest.index.base import (
    MIXED_VALUE,
    IndexClosed,
    IndexContractError,
    IndexStore,
    InvalidDocument,
)
from ingest.index.local import LocalIndexCatalog, LocalIndexStore
from ingest.models import IndexDoc, ItemRef, chunk_key, text_hash
from ingest.query import security_filter

DIMS = 8
G1 = "11111111-1111-1111-1111-111111111111"
G2 = "22222222-2222-2222-2222-222222222222"
U1 = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"
A = ItemRef("drive-a", "item-1")
B = ItemRef("drive-a", "item-2")
C = ItemRef("drive-b", "item-3")


def vector_for(text: str) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    return np.random.default_rng(seed).standard_normal(DIMS).tolist()


def make_doc(item: ItemRef, chunk_no: int, content: str = "shared words", *,
             groups: tuple[str, ...] = (G1,), users: tuple[str, ...] = (),
             **overrides: object) -> IndexDoc:
    values: dict[str, object] = dict(
        id=chunk_key(item.parent_key, chunk_no), parent_key=item.parent_key, chunk_no=chunk_no,
        chunk_count=3, content=content, content_vector=vector_for(content),
        content_hash=text_hash(content), embedding_model="offline-8", title=f"Title {item.item_id}",
        url=f"https://contoso.example/{item.item_id}", path=f"/Shared Documents/{item.item_id}",
        site_id="site", site_name="Site", drive_id=item.drive_id, item_id=item.item_id,
        source_kind="file", content_type="application/pdf",
        last_modified="2026-03-04T10:00:00Z", page_start=1, page_end=2, content_tag="ctag-1",
        acl_hash="acl-1", group_ids=list(groups), user_ids=list(users))
    values.update(overrides)
    return IndexDoc(**values)  # type: ignore[arg-type]


@pytest.fixture
async def catalog(tmp_path: Path) -> LocalIndexCatalog:
    return LocalIndexCatalog(tmp_path)


@pytest.fixture
async def store(catalog: LocalIndexCatalog) -> AsyncIterator[LocalIndexStore]:
    created = await catalog.create_index("test-v1", DIMS)
    yield created
    await created.close()


async def keys(store: LocalIndexStore) -> list[str]:
    return [str(d["id"]) for d in await store.documents()]


async def test_store_satisfies_the_protocol(store: LocalIndexStore) -> None:
    assert isinstance(store, IndexStore)
    assert store.name == "test-v1"


async def test_upsert_then_documents_returns_every_field(store: LocalIndexStore) -> None:
    doc = make_doc(A, 0, groups=(G2, G1), users=(U1,))
    await store.upsert([make_doc(A, 1), doc])
    documents = await store.documents()
    assert [d["id"] for d in documents] == sorted([doc.id, chunk_key(A.parent_key, 1)])
    stored = documents[0]
    expected = doc.as_fields()
    assert stored.keys() == expected.keys()
    assert stored["group_ids"] == [G2, G1] and stored["user_ids"] == [U1]
    assert np.allclose(stored.pop("content_vector"), expected.pop("content_vector"), atol=1e-6)
    assert stored == expected


async def test_upsert_replaces_by_key(store: LocalIndexStore) -> None:
    await store.upsert([make_doc(A, 0, "old text", groups=(G1,))])
    await store.upsert([make_doc(A, 0, "new text", groups=(G2,))])
    (doc,) = await store.documents()
    assert doc["content"] == "new text" and doc["group_ids"] == [G2]
    assert await store.search("old", None, security=None) == []
    assert await store.search("new", None, security=security_filter(None, [G1])) == []
    assert len(await store.search("new", None, security=security_filter(None, [G2]))) == 1


async def test_upsert_of_nothing_is_a_no_op(store: LocalIndexStore) -> None:
    await store.upsert([])
    assert await store.count() == 0


@pytest.mark.parametrize("bad", [
    {"content_vector": [0.0] * (DIMS - 1)},
    {"content_vector": [float("nan")] * DIMS},
    {"content_vector": ["1"] * DIMS},
    {"id": "_starts-with-underscore"},
    {"id": "has space"},
    {"parent_key": "0" * 40},
    {"group_ids": None},
    {"user_ids": [1, 2]},
    {"chunk_count": 2**31},
    {"page_start": "1"},
    {"last_modified": "4 March 2026"},
    {"last_modified": "2026-03-04T10:00:00"},
    {"title": 7},
])
async def test_an_invalid_document_writes_nothing_of_its_batch(store: LocalIndexStore,
                                                             bad: dict[str, object]) -> None:
    with pytest.raises(InvalidDocument):
        await store.upsert([make_doc(B, 0), make_doc(A, 0, **bad)])
    assert await store.count() == 0


async def test_a_key_twice_in_one_batch_is_refused(store: LocalIndexStore) -> None:
    with pytest.raises(IndexContractError):
        await store.upsert([make_doc(A, 0), make_doc(A, 0, "other")])
    assert await store.count() == 0


async def test_merge_sets_fields_on_every_chunk_of_the_item_only(store: LocalIndexStore) -> None:
    await store.upsert([make_doc(A, 0), make_doc(A, 1), make_doc(B, 0)])
    await store.merge(A, {"title": "Renamed", "path": "/New/place", "acl_hash": "acl-2",
                          "group_ids": [G2], "user_ids": [U1]})
    by_item = {(d["item_id"], d["chunk_no"]): d for d in await store.documents()}
    for chunk in (0, 1):
        doc = by_item[("item-1", chunk)]
        assert (doc["title"], doc["path"], doc["acl_hash"]) == ("Renamed", "/New/place", "acl-2")
        assert doc["group_ids"] == [G2] and doc["user_ids"] == [U1]
        assert doc["content"] == "shared words"  # untouched
    assert by_item[("item-2", 0)]["title"] == "Title item-2"
    assert by_item[("item-2", 0)]["group_ids"] == [G1]


async def test_merge_of_security_fields_changes_who_finds_the_item(store: LocalIndexStore) -> None:
    await store.upsert([make_doc(A, 0, groups=(G1,))])
    g1, g2, user = security_filter(None, [G1]), security_filter(None, [G2]), security_filter(U1, [])
    assert len(await store.search("shared", None, security=g1)) == 1
    await store.merge(A, {"group_ids": [G2], "user_ids": [U1]})
    assert await store.search("shared", None, security=g1) == []
    assert len(await store.search("shared", None, security=g2)) == 1
    assert len(await store.search("shared", vector_for("x"), security=user)) == 1
    await store.merge(A, {"group_ids": [], "user_ids": []})
    assert await store.search("shared", vector_for("x"), security=g2) == []
    assert await store.search("shared", vector_for("x"), security=user) == []


async def test_merge_on_an_item_without_chunks_is_a_no_op(store: LocalIndexStore) -> None:
    await store.upsert([make_doc(A, 0)])
    await store.merge(B, {"title": "Nothing"})
    assert [d["title"] for d in await store.documents()] == ["Title item-1"]


@pytest.mark.parametrize("fields", [{"content": "x"}, {"id": "k"}, {"chunk_no": 1},
                                    {"content_vector": [0.0] * DIMS}, {"unknown": 1},
                                    {"group_ids": "not-a-list"}])
async def test_merge_refuses_per_chunk_and_unknown_fields(store: LocalIndexStore,
                                                         fields: dict[str, object]) -> None:
    await store.upsert([make_doc(A, 0)])
    with pytest.raises(InvalidDocument):
        await store.merge(A, fields)


async def test_prune_deletes_only_the_items_chunks_not_kept(store: LocalIndexStore) -> None:
    await store.upsert([make_doc(A, n) for n in range(3)] + [make_doc(B, n) for n in range(2)])
    await store.prune(A, {chunk_key(A.parent_key, 0), chunk_key(B.parent_key, 1)})
    assert await keys(store) == sorted([chunk_key(A.parent_key, 0), chunk_key(B.parent_key, 0),
                                        chunk_key(B.parent_key, 1)])
    await store.prune(B, [])
    assert await keys(store) == [chunk_key(A.parent_key, 0)]
    with pytest.raises(IndexContractError):
        await store.prune(A, chunk_key(A.parent_key, 0))


async def test_delete_item_removes_all_its_chunks(store: LocalIndexStore) -> None:
    await store.upsert([make_doc(A, n) for n in range(3)] + [make_doc(C, 0)])
    await store.delete_item(A)
    await store.delete_item(B)  # nothing there: no error
    assert await keys(store) == [chunk_key(C.parent_key, 0)]
    assert await store.search("shared", vector_for("shared words"), security=None) != []
    assert {h.key for h in await store.search("shared", vector_for("q"), security=None)} == \
        {chunk_key(C.parent_key, 0)}


async def test_indexed_state_is_the_manifest(store: LocalIndexStore) -> None:
    docs = [make_doc(A, n, f"text {n}") for n in range(3)] + [make_doc(C, 0, content_tag=None)]
    await store.upsert(docs)
    state = await store.indexed_state([A, B, C])
    assert set(state) == {A, C}
    a = state[A]
    assert (a.ref, a.content_tag, a.acl_hash, a.embedding_model) == \
        (A, "ctag-1", "acl-1", "offline-8")
    assert (a.title, a.url, a.path, a.last_modified) == (
        "Title item-1", "https://contoso.example/item-1", "/Shared Documents/item-1",
        "2026-03-04T10:00:00Z")
    assert dict(a.chunks) == {d.id: d.content_hash for d in docs[:3]}
    assert state[C].content_tag is None


async def test_indexed_state_reports_disagreeing_chunks_as_mixed(store: LocalIndexStore) -> None:
    await store.upsert([make_doc(A, 0), make_doc(A, 1, acl_hash="acl-2", title="Other")])
    state = (await store.indexed_state([A]))[A]
    assert state.acl_hash == MIXED_VALUE and state.title == MIXED_VALUE
    assert state.content_tag == "ctag-1"


async def test_indexed_state_reads_many_items(store: LocalIndexStore) -> None:
    items = [ItemRef("drive-a", f"bulk-{i}") for i in range(1200)]
    await store.upsert([make_doc(item, 0) for item in items])
    state = await store.indexed_state(items + [B])
    assert set(state) == set(items)


async def test_drive_items_and_count(store: LocalIndexStore) -> None:
    await store.upsert([make_doc(A, 0), make_doc(A, 1), make_doc(B, 0), make_doc(C, 0)])
    assert await store.drive_items("drive-a") == {A, B}
    assert await store.drive_items("drive-b") == {C}
    assert await store.drive_items("drive-z") == set()
    assert await store.count() == 4
    assert await store.count(drive_id="drive-a") == 3
    assert await store.count(drive_id="drive-z") == 0


async def test_vectors_returns_stored_vectors_of_existing_keys(store: LocalIndexStore) -> None:
    doc = make_doc(A, 0)
    await store.upsert([doc])
    got = await store.vectors([doc.id, chunk_key(B.parent_key, 0), doc.id])
    assert set(got) == {doc.id}
    assert got[doc.id] == np.asarray(doc.content_vector, dtype=np.float32).tolist()


async def test_writes_through_another_connection_are_seen(catalog: LocalIndexCatalog,
                                                         store: LocalIndexStore) -> None:
    other = await catalog.open_index("test-v1")
    await store.upsert([make_doc(A, 0, "first")])
    assert [h.key for h in await other.search("", vector_for("first"), security=None)] == \
        [chunk_key(A.parent_key, 0)]
    await store.upsert([make_doc(B, 0, "second")])
    await store.merge(A, {"group_ids": [G2]})
    hits = await other.search("", vector_for("second"), security=security_filter(None, [G1]))
    assert [h.key for h in hits] == [chunk_key(B.parent_key, 0)]
    await other.close()


async def test_data_survives_reopening(catalog: LocalIndexCatalog, store: LocalIndexStore) -> None:
    await store.upsert([make_doc(A, 0)])
    await store.close()
    reopened = await catalog.open_index("test-v1")
    assert await reopened.count() == 1
    await reopened.close()


async def test_a_closed_store_refuses_calls(store: LocalIndexStore) -> None:
    await store.close()
    await store.close()
    with pytest.raises(IndexClosed):
        await store.count()
    with pytest.raises(IndexClosed):
        await store.upsert([make_doc(A, 0)])


async def test_an_unreadable_file_is_index_unavailable(catalog: LocalIndexCatalog,
                                                       tmp_path: Path) -> None:
    (tmp_path / "broken-v1.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(IndexUnavailable):
        await catalog.open_index("broken-v1")
