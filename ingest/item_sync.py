"""One item's cheapest path into the index (DESIGN invariant 4).

- listing says it cannot be indexed (too large, unsupported, empty, known bad): skip, no download;
- content unchanged (`cTag` equal): merge metadata and/or ACL, no download, no embedding;
- content new or changed: download, extract, chunk, embed only chunks whose text hash is new,
  upsert, then prune the item's stale chunks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ingest.acl import SiteGroupResolver, permissions_to_acl
from ingest.chunking import Chunker
from ingest.config import Settings
from ingest.embedding import Embedder
from ingest.errors import BadInput, EmptyFile, TooLarge, UnsupportedFormat
from ingest.extract import extract, is_supported
from ingest.faults import crash_point
from ingest.index.base import IndexStore
from ingest.models import Acl, Chunk, IndexDoc, IndexedItem, SourceItem, chunk_key
from ingest.report import RunReport
from ingest.source import SharePointSource
from ingest.staging import Staging
from ingest.state.base import KnownBad


UNREADABLE_ACL_HASH = "unreadable"  # stored with empty group_ids/user_ids: nobody matches
NATIVE_ACL_MAX_VALUES = 1000  # values per permission field of Azure AI Search's native ACLs (preview)


@dataclass(slots=True)
class Outcome:
    """What happened to one item: a change kind from `report.CHANGE_KINDS`."""

    kind: str


class ItemSync:
    """Reads an item's permissions and content and writes its chunks, as cheaply as it can."""

    def __init__(
        self,
        *,
        settings: Settings,
        source: SharePointSource,
        index: IndexStore,
        embedder: Embedder,
        chunker: Chunker,
        report: RunReport,
        site_groups: SiteGroupResolver | None,
        reuse_from: IndexStore | None = None,
        staging: Staging | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.index = index
        self.embedder = embedder
        self.chunker = chunker
        self.report = report
        self.site_groups = site_groups
        self.reuse_from = reuse_from  # a rebuild takes vectors of unchanged text from the live index
        self.staging = staging

    def precheck(self, item: SourceItem, known_bad: Mapping[str, KnownBad]) -> None:
        """Refuse, from the listing alone, what is not worth a download."""
        if item.size is not None and item.size > self.settings.max_file_bytes:
            raise TooLarge(f"{item.size} bytes is over the {self.settings.sync.max_file_mb:g} MB limit; not downloaded")
        if item.kind == "file" and not is_supported(item.name, item.mime_type):
            raise UnsupportedFormat(f"no extractor for {item.name!r} ({item.mime_type or 'unknown type'})")
        if item.kind == "file" and item.size == 0:
            raise EmptyFile("zero-byte file; not downloaded")
        bad = known_bad.get(item.ref.item_id)
        if bad is not None and item.ctag is not None and bad.ctag == item.ctag:
            raise BadInput(f"{bad.message} (unchanged since; not downloaded again)", reason=bad.reason)

    async def acl(self, item: SourceItem) -> Acl:
        """The item's readers; raises PermissionsUnreadable (fail closed) when unknown."""
        permissions = await self.source.permissions(item)
        result = await permissions_to_acl(
            permissions, site=item.drive.site, policy=self.settings.acl, site_groups=self.site_groups
        )
        if result.unresolved:
            self.report.unresolved_grants[item.ref.item_id] = sorted(set(result.unresolved))
        acl = result.acl
        if max(len(acl.group_ids), len(acl.user_ids)) > NATIVE_ACL_MAX_VALUES:
            # spindex's own filter has no cap, but a reader using the service's native ACLs would.
            self.report.large_acls[item.ref.item_id] = {"groups": len(acl.group_ids), "users": len(acl.user_ids)}
        return acl

    async def lock(self, item: SourceItem, indexed: IndexedItem | None) -> None:
        """Make an indexed item searchable by nobody, keeping its chunks for a cheap restore."""
        if indexed is not None and indexed.acl_hash != UNREADABLE_ACL_HASH:
            await self.index.merge(item.ref, {"group_ids": [], "user_ids": [], "acl_hash": UNREADABLE_ACL_HASH})
            self.report.index["items_locked"] += 1

    async def apply(self, item: SourceItem, indexed: IndexedItem | None, acl: Acl) -> Outcome:
        """Bring the item's index documents in step with SharePoint."""
        if (
            indexed is not None
            and item.ctag is not None
            and indexed.content_tag == item.ctag
            and indexed.embedding_model == self.embedder.model_id
        ):
            return await self.merge_changes(item, indexed, acl)
        return await self.reindex(item, indexed, acl)

    async def merge_changes(self, item: SourceItem, indexed: IndexedItem, acl: Acl | None) -> Outcome:
        """Content unchanged: merge new metadata and/or ACL (None: keep it); no download."""
        fields: dict[str, object] = {}
        meta = item.metadata_fields()
        current = {
            "title": indexed.title,
            "url": indexed.url,
            "path": indexed.path,
            "last_modified": indexed.last_modified,
            "ancestor_ids": list(indexed.ancestor_ids),
        }
        if meta != current:
            fields.update(meta)
        if acl is not None and acl.acl_hash != indexed.acl_hash:
            fields.update(group_ids=sorted(acl.group_ids), user_ids=sorted(acl.user_ids), acl_hash=acl.acl_hash)
        if not fields:
            return Outcome("unchanged")
        await self.index.merge(item.ref, fields)
        self.report.index["items_merged"] += 1
        return Outcome("metadata_only" if meta != current else "acl_only")

    async def reindex(self, item: SourceItem, indexed: IndexedItem | None, acl: Acl) -> Outcome:
        """New or changed content: download, extract, chunk, embed only new text, upsert, prune."""
        extracted = await self.staging.get(item.ref, item.ctag) if self.staging is not None else None
        if extracted is None:
            content = await self.source.fetch(item)
            crash_point("download")
            if len(content) > self.settings.max_file_bytes:
                raise TooLarge(f"download of {len(content)} bytes is over the {self.settings.sync.max_file_mb:g} MB limit")
            try:
                extracted = await asyncio.to_thread(extract, item.name, item.mime_type, content)
            except BadInput as exc:
                if self.staging is not None:
                    await self.staging.put_bad(item.ref, item.ctag, exc)
                raise
            if self.staging is not None:
                await self.staging.put(item.ref, item.ctag, extracted)
        else:
            self.report.index["staged_reads"] += 1
        chunks = await asyncio.to_thread(self.chunker.chunk, extracted)
        if not chunks:
            raise EmptyFile("no text to index")
        vectors = await self._vectors(item, chunks, indexed)
        crash_point("embed")
        parent = item.ref.parent_key
        docs = [self._doc(item, acl, chunk, len(chunks), vectors[chunk.content_hash], parent) for chunk in chunks]
        await self.index.upsert(docs)
        crash_point("index_write")
        await self.index.prune(item.ref, {doc.id for doc in docs})
        crash_point("prune")
        self.report.index["documents_upserted"] += len(docs)
        return Outcome("created" if indexed is None else "content_changed")

    async def _vectors(self, item: SourceItem, chunks: Sequence[Chunk], indexed: IndexedItem | None) -> dict[str, list[float]]:
        """Vectors by content hash: reused from the index (or the live one) where text is unchanged."""
        wanted = {chunk.content_hash for chunk in chunks}
        found: dict[str, list[float]] = {}
        sources: list[tuple[IndexStore, IndexedItem | None]] = [(self.index, indexed)]
        if self.reuse_from is not None:
            sources.append((self.reuse_from, (await self.reuse_from.indexed_state([item.ref])).get(item.ref)))
        for store, manifest in sources:
            if manifest is None or manifest.embedding_model != self.embedder.model_id or wanted <= set(found):
                continue
            reusable = [key for key, digest in manifest.chunks.items() if digest in wanted and digest not in found]
            for key, vector in (await store.vectors(reusable)).items():
                found[manifest.chunks[key]] = vector
        todo: dict[str, Chunk] = {}
        for chunk in chunks:
            if chunk.content_hash not in found:
                todo.setdefault(chunk.content_hash, chunk)
        batch_size = self.settings.embedding.batch_inputs
        pending = list(todo.values())
        for start in range(0, len(pending), batch_size):
            part = pending[start : start + batch_size]
            result = await self.embedder.embed([c.text for c in part])
            self.report.embedding["requests"] += 1
            self.report.embedding["inputs"] += len(part)
            self.report.embedding["tokens"] += sum(c.token_count for c in part)
            for chunk, vector in zip(part, result, strict=True):
                found[chunk.content_hash] = vector
        self.report.embedding["reused"] += len(wanted) - len(todo)
        return found

    def _doc(self, item: SourceItem, acl: Acl, chunk: Chunk, count: int, vector: list[float], parent: str) -> IndexDoc:
        return IndexDoc(
            id=chunk_key(parent, chunk.chunk_no),
            parent_key=parent,
            chunk_no=chunk.chunk_no,
            chunk_count=count,
            content=chunk.text,
            content_vector=vector,
            content_hash=chunk.content_hash,
            embedding_model=self.embedder.model_id,
            title=item.title,
            url=item.web_url,
            path=item.path,
            site_id=item.drive.site.site_id,
            site_name=item.drive.site.name,
            drive_id=item.ref.drive_id,
            item_id=item.ref.item_id,
            source_kind=item.kind,
            content_type=item.mime_type,
            last_modified=item.last_modified,
            page_start=chunk.page_start,
            page_end=chunk.page_end,
            content_tag=item.ctag,
            acl_hash=acl.acl_hash,
            group_ids=sorted(acl.group_ids),
            user_ids=sorted(acl.user_ids),
            ancestor_ids=list(item.ancestor_ids),
        )
