"""A full sync indexes every readable file and page faithfully, and is idempotent.

Defends: each indexable item of the demo tenant is in the index with its title, url, site,
library, path and kind; PDF chunks carry the pages their text came from; the chunk count is
what the chunker makes of the item's text; a second full sync of an unchanged tenant leaves
the index identical (same keys, same values) and downloads and embeds nothing.
"""

from __future__ import annotations

import re
from collections import defaultdict

from ingest.chunking import Chunker
from ingest.extract import extract
from ingest.models import ItemRef
from tests.integration.conftest import SyncedTenant, index_documents, sync


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _by_item(docs: list[dict[str, object]]) -> dict[str, list[dict[str, object]]]:
    grouped: dict[str, list[dict[str, object]]] = defaultdict(list)
    for doc in docs:
        grouped[str(doc["parent_key"])].append(doc)
    for chunks in grouped.values():
        chunks.sort(key=lambda d: int(d["chunk_no"]))  # type: ignore[arg-type]
    return grouped


def test_every_indexable_item_is_indexed_with_its_metadata(synced_demo: SyncedTenant) -> None:
    tenant = synced_demo.tenant
    grouped = _by_item(index_documents(synced_demo.settings))
    expected = [item for item in tenant.items() if item.bad_input is None]
    assert len(expected) >= 30 + 5
    assert {ItemRef(i.drive_id, i.item_id).parent_key for i in expected} == set(grouped)
    for item in expected:
        chunks = grouped[ItemRef(item.drive_id, item.item_id).parent_key]
        first = chunks[0]
        assert first["title"] == item.title, item.name
        assert first["url"] == item.web_url
        assert first["site_id"] == item.site_id
        assert first["drive_id"] == item.drive_id and first["item_id"] == item.item_id
        assert first["path"] == item.path
        assert first["source_kind"] == ("page" if item.kind == "page" else "file")
        assert [c["chunk_no"] for c in chunks] == list(range(len(chunks)))
        assert {c["chunk_count"] for c in chunks} == {len(chunks)}
        assert all(c["group_ids"] or c["user_ids"] for c in chunks), f"{item.name} indexed with nobody allowed"


def test_chunk_count_is_what_the_chunker_makes_of_the_text(synced_demo: SyncedTenant) -> None:
    tenant, settings = synced_demo.tenant, synced_demo.settings
    chunker = Chunker(settings.chunking.chunk_tokens, settings.chunking.overlap_tokens)
    grouped = _by_item(index_documents(settings))
    files = [i for i in tenant.items() if i.bad_input is None and i.kind == "file"]
    for item in files:
        content = tenant.node(item.drive_id, item.item_id).content.read()
        chunks = chunker.chunk(extract(item.name, item.mime_type, content))
        indexed = grouped[ItemRef(item.drive_id, item.item_id).parent_key]
        assert [c.text for c in chunks] == [d["content"] for d in indexed], item.name
    assert any(len(grouped[ItemRef(i.drive_id, i.item_id).parent_key]) >= 5 for i in files), "no long document"


def test_pdf_chunks_carry_the_pages_their_text_came_from(synced_demo: SyncedTenant) -> None:
    grouped = _by_item(index_documents(synced_demo.settings))
    pdfs = [i for i in synced_demo.tenant.items() if i.page_texts and i.bad_input is None]
    assert any(len(i.page_texts or []) >= 3 for i in pdfs)
    for item in pdfs:
        pages = [_words(p) for p in item.page_texts or []]
        for chunk in grouped[ItemRef(item.drive_id, item.item_id).parent_key]:
            start, end = chunk["page_start"], chunk["page_end"]
            assert isinstance(start, int) and isinstance(end, int) and 1 <= start <= end <= len(pages)
            span = " ".join(pages[start - 1 : end])
            text = _words(str(chunk["content"]))
            assert text[:60] in span and text[-60:] in span, (item.name, start, end)
            assert text[:60] in pages[start - 1] or start == end, "page_start is not where the chunk begins"


def test_second_full_sync_of_unchanged_tenant_changes_nothing(synced_demo: SyncedTenant) -> None:
    before = index_documents(synced_demo.settings)
    requests_before = len(synced_demo.embeddings.requests)
    synced_demo.server.stats.reset()
    report = sync(synced_demo.settings, full=True)
    after = index_documents(synced_demo.settings)
    assert report.status == "ok"
    assert after == before
    totals = report.totals()
    assert totals["created"] == totals["content_changed"] == totals["deleted"] == 0
    assert totals["unchanged"] == len({d["parent_key"] for d in before})
    assert report.embedding.get("inputs", 0) == 0 and len(synced_demo.embeddings.requests) == requests_before
    assert synced_demo.server.stats.snapshot()["downloads"] == 0
