"""The one code path for full and delta syncs, and the commit rule.

For each library: hold its lease, load its cursor (none, or `full`, means enumerate it all),
then for each `ChangeBatch` from the source: classify each item against the index manifest,
take its cheapest path, write to the index, and only then save the cursor after that batch.
A crash anywhere leaves the cursor at the last fully written batch, so a rerun redoes at most
one batch, and every write is idempotent (deterministic keys, upsert then prune).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ingest.acl import AclResult, SiteGroupResolver, permissions_to_acl
from ingest.chunking import Chunker
from ingest.config import Settings
from ingest.embedding import Embedder
from ingest.errors import (
    BadInput,
    EmptyFile,
    ItemError,
    PermissionsUnreadable,
    SpindexError,
    SystemicError,
    TooLarge,
    UnsupportedFormat,
)
from ingest.extract import extract, is_supported
from ingest.index.base import IndexStore
from ingest.models import Acl, Chunk, DriveRef, IndexDoc, IndexedItem, SourceItem, chunk_key
from ingest.report import ItemProblem, RunReport
from ingest.source import ChangeBatch, SharePointSource
from ingest.state.base import DriveCursor, LeaseHeld, StateStore

ProgressFn = Callable[[str, DriveRef | None, int], None]


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


@dataclass(slots=True)
class Outcome:
    """What happened to one item: a change kind from `report.CHANGE_KINDS`."""

    kind: str


class Pipeline:
    """Moves changes from SharePoint into one index, library by library."""

    def __init__(
        self,
        *,
        settings: Settings,
        source: SharePointSource,
        index: IndexStore,
        embedder: Embedder,
        chunker: Chunker,
        state: StateStore,
        report: RunReport,
        site_groups: SiteGroupResolver | None = None,
        progress: ProgressFn | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.index = index
        self.embedder = embedder
        self.chunker = chunker
        self.state = state
        self.report = report
        self.site_groups = site_groups
        self.progress = progress or (lambda event, drive, n: None)
        self._limit = asyncio.Semaphore(settings.sync.concurrency)

    async def run(self, *, full: bool) -> RunReport:
        """Sync every configured library; raises SystemicError (after recording it) to abort."""
        drives = await self.source.drives()
        self.progress("drives", None, len(drives))
        for drive in drives:
            self.report.library_names[drive.drive_id] = f"{drive.site.name} / {drive.name}"
            try:
                async with self.state.lease(drive.state_key):
                    await self.sync_drive(drive, full=full)
            except LeaseHeld:
                # Another run (a long full run, another replica) has this library: leave it be.
                self.report.leased.append(drive.drive_id)
        return self.report

    async def sync_drive(self, drive: DriveRef, *, full: bool) -> None:
        """Bring one library's index documents in step with SharePoint, committing per batch."""
        stored = await self.state.load(drive.state_key)
        cursor, etag = stored if stored is not None else (None, None)
        resume = None if full or cursor is None else cursor.link
        enumerating = resume is None
        seen: set[str] = set()
        self.report.count(drive.drive_id, "created", 0)
        async for batch in self.source.changes(drive, resume):
            await self.apply(batch)
            if enumerating:
                seen.update(item.ref.item_id for item in batch.upserts)
            if batch.final and enumerating:
                await self._reconcile(drive, seen)
            new_cursor = DriveCursor(drive_id=drive.drive_id, link=batch.cursor_after, caught_up=batch.final)
            etag = await self.state.save(drive.state_key, new_cursor, if_match=etag)

    async def _reconcile(self, drive: DriveRef, seen: set[str]) -> None:
        """After a whole enumeration: remove indexed items the library no longer has."""
        for ref in sorted(await self.index.drive_items(drive.drive_id)):
            if ref.item_id not in seen:
                await self.index.delete_item(ref)
                self.report.count(drive.drive_id, "deleted")
                self.report.index["items_deleted"] += 1

    async def apply(self, batch: ChangeBatch) -> None:
        """Write one batch's changes to the index; raises if anything systemic failed."""
        manifest = await self.index.indexed_state([item.ref for item in batch.upserts])
        try:
            async with asyncio.TaskGroup() as group:
                for item in batch.upserts:
                    group.create_task(self._guarded(item, manifest.get(item.ref)))
        except BaseExceptionGroup as exc:
            raise _unwrap(exc) from None
        for ref in batch.deletes:
            await self.index.delete_item(ref)
            self.report.count(ref.drive_id, "deleted")
            self.report.index["items_deleted"] += 1
        self.progress("batch", batch.drive, len(batch.upserts) + len(batch.deletes))

    async def _guarded(self, item: SourceItem, indexed: IndexedItem | None) -> None:
        async with self._limit:
            stage = "list"
            try:
                self._precheck(item)
                stage = "permissions"
                acl = await self._acl(item)
                stage = "content"
                outcome = await self._process(item, indexed, acl)
            except BadInput as exc:
                await self._drop(item, indexed)
                self.report.skip(self._problem(item, "list" if stage == "list" else "extract", exc))
                return
            except ItemError as exc:
                await self._drop(item, indexed)  # fail closed: unknown readers, not searchable
                self.report.fail(self._problem(item, "permissions" if stage == "permissions" else "download", exc))
                return
            self.report.count(item.ref.drive_id, outcome.kind)

    @staticmethod
    def _problem(item: SourceItem, stage: str, exc: SpindexError) -> ItemProblem:
        reason = exc.reason if isinstance(exc, ItemError) else type(exc).__name__
        return ItemProblem(item.ref.drive_id, item.ref.item_id, item.name, item.path, stage, reason, str(exc))

    async def _drop(self, item: SourceItem, indexed: IndexedItem | None) -> None:
        if indexed is not None:
            await self.index.delete_item(item.ref)
            self.report.index["items_deleted"] += 1

    async def _acl(self, item: SourceItem) -> Acl:
        permissions = await self.source.permissions(item)
        result: AclResult = await permissions_to_acl(
            permissions, site=item.drive.site, policy=self.settings.acl, site_groups=self.site_groups
        )
        if result.unresolved:
            self.report.unresolved_grants[item.ref.item_id] = sorted(set(result.unresolved))
        return result.acl

    def _precheck(self, item: SourceItem) -> None:
        """Refuse, from the listing alone, what is not worth a download."""
        if item.size is not None and item.size > self.settings.max_file_bytes:
            raise TooLarge(f"{item.size} bytes is over the {self.settings.sync.max_file_mb:g} MB limit; not downloaded")
        if item.kind == "file" and not is_supported(item.name, item.mime_type):
            raise UnsupportedFormat(f"no extractor for {item.name!r} ({item.mime_type or 'unknown type'})")
        if item.kind == "file" and item.size == 0:
            raise EmptyFile("zero-byte file; not downloaded")

    async def _process(self, item: SourceItem, indexed: IndexedItem | None, acl: Acl) -> Outcome:
        if (
            indexed is not None
            and item.ctag is not None
            and indexed.content_tag == item.ctag
            and indexed.embedding_model == self.embedder.model_id
        ):
            return await self._merge_changes(item, indexed, acl)
        return await self._reindex(item, indexed, acl)

    async def _merge_changes(self, item: SourceItem, indexed: IndexedItem, acl: Acl) -> Outcome:
        """Content unchanged: merge new metadata and/or ACL; no download, no embedding."""
        fields: dict[str, object] = {}
        meta = item.metadata_fields()
        current = {"title": indexed.title, "url": indexed.url, "path": indexed.path, "last_modified": indexed.last_modified}
        if meta != current:
            fields.update(meta)
        if acl.acl_hash != indexed.acl_hash:
            fields.update(group_ids=sorted(acl.group_ids), user_ids=sorted(acl.user_ids), acl_hash=acl.acl_hash)
        if not fields:
            return Outcome("unchanged")
        await self.index.merge(item.ref, fields)
        self.report.index["items_merged"] += 1
        return Outcome("metadata_only" if meta != current else "acl_only")

    async def _reindex(self, item: SourceItem, indexed: IndexedItem | None, acl: Acl) -> Outcome:
        """New or changed content: download, extract, chunk, embed only new text, upsert, prune."""
        content = await self.source.fetch(item)
        if len(content) > self.settings.max_file_bytes:
            raise TooLarge(f"download of {len(content)} bytes is over the {self.settings.sync.max_file_mb:g} MB limit")
        extracted = await asyncio.to_thread(extract, item.name, item.mime_type, content)
        chunks = await asyncio.to_thread(self.chunker.chunk, extracted)
        if not chunks:
            raise EmptyFile("no text to index")
        vectors = await self._vectors(chunks, indexed)
        parent = item.ref.parent_key
        docs = [self._doc(item, acl, chunk, len(chunks), vectors[chunk.content_hash], parent) for chunk in chunks]
        await self.index.upsert(docs)
        await self.index.prune(item.ref, {doc.id for doc in docs})
        self.report.index["documents_upserted"] += len(docs)
        return Outcome("created" if indexed is None else "content_changed")

    async def _vectors(self, chunks: Sequence[Chunk], indexed: IndexedItem | None) -> dict[str, list[float]]:
        """Vectors by content hash: reused from the index where the text is unchanged."""
        wanted = {chunk.content_hash for chunk in chunks}
        found: dict[str, list[float]] = {}
        if indexed is not None and indexed.embedding_model == self.embedder.model_id:
            reusable = [key for key, digest in indexed.chunks.items() if digest in wanted]
            stored = await self.index.vectors(reusable)
            for key, vector in stored.items():
                found[indexed.chunks[key]] = vector
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
        )

