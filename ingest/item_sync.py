"""One item's cheapest path into the index (DESIGN invariant 4).

- listing says it cannot be indexed (too large, unsupported, empty, known bad): skip, no download;
- content unchanged (`cTag` equal): merge metadata and/or ACL, no download, no embedding;
- content new or changed: download, extract, chunk, embed only chunks whose text hash is new,
  upsert, then prune the item's stale chunks.

Extraction and chunking run in a process pool (`ingest.extraction_pool`), so that parsing a
PDF never holds the event loop's interpreter lock; embedding requests of concurrent items may share one
request (`EmbeddingBatcher`, when `sync.embed_linger_ms` > 0).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ingest.acl import AclResult, SiteGroupResolver, permissions_to_acl
from ingest.acl_scopes import AclScopes, AclTable
from ingest.chunking import Chunker
from ingest.config import Settings
from ingest.embedding import Embedder
from ingest.embedding.base import MAX_TOKENS_PER_REQUEST
from ingest.errors import BadInput, EmptyFile, TooLarge, UnsupportedFormat
from ingest.extract import extract, is_supported
from ingest.extraction_jobs import chunk_text, extract_and_chunk
from ingest.extraction_pool import ExtractionPool
from ingest.faults import crash_point
from ingest.index.base import IndexStore
from ingest.models import Acl, Chunk, DriveRef, IndexDoc, IndexedItem, SourceItem, chunk_key
from ingest.report import RunReport
from ingest.source import SharePointSource
from ingest.staging import Staging
from ingest.state.base import KnownBad


log = logging.getLogger(__name__)

UNREADABLE_ACL_HASH = "unreadable"  # stored with empty group_ids/user_ids: nobody matches
NATIVE_ACL_MAX_VALUES = 1000  # values per permission field of Azure AI Search's native ACLs (preview)


@dataclass(slots=True)
class Outcome:
    """What happened to one item: a change kind from `report.CHANGE_KINDS`."""

    kind: str


@dataclass
class _Waiting:
    texts: list[str]
    tokens: list[int]
    future: asyncio.Future[list[list[float]]]


@dataclass
class EmbeddingBatcher:
    """Lets concurrent items share embedding requests.

    Texts asked for within `linger_s` of the first waiting ones go out in one call to the
    embedder, made at once when `max_inputs` inputs or `max_tokens` tokens are waiting. Each
    caller gets its own vectors, in order. An input error (ValueError) is retried caller by
    caller, so that it reaches only the item it belongs to; any other error reaches every
    caller of the request.
    """

    embedder: Embedder
    linger_s: float
    max_inputs: int
    max_tokens: int = MAX_TOKENS_PER_REQUEST
    on_request: Callable[[int, int], None] = lambda inputs, tokens: None
    pass_tokens: bool = False  # the callers' token counts are the embedder's own: passed on
    _waiting: list[_Waiting] = field(default_factory=list)
    _inputs: int = 0
    _tokens: int = 0
    _timer: asyncio.TimerHandle | None = None
    _sending: set[asyncio.Task[None]] = field(default_factory=set)

    async def embed(self, texts: Sequence[str], tokens: Sequence[int]) -> list[list[float]]:
        """One vector per text, in order, possibly from a request shared with other callers."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(list(texts), list(tokens), loop.create_future())
        self._waiting.append(waiting)
        self._inputs += len(waiting.texts)
        self._tokens += sum(waiting.tokens)
        if self._inputs >= self.max_inputs or self._tokens >= self.max_tokens:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.linger_s, self._flush)
        return await waiting.future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        group, self._waiting, self._inputs, self._tokens = self._waiting, [], 0, 0
        if group:
            task = asyncio.get_running_loop().create_task(self._send(group))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, group: list[_Waiting]) -> None:
        texts = [text for waiting in group for text in waiting.texts]
        tokens = [count for waiting in group for count in waiting.tokens]
        try:
            vectors = await self.embedder.embed(texts, tokens if self.pass_tokens else None)
        except ValueError as exc:
            if len(group) == 1:
                _settle(group[0], exc)
            else:
                for waiting in group:  # find whose input it was
                    await self._send([waiting])
            return
        except Exception as exc:  # systemic: every caller's run is over anyway
            for waiting in group:
                _settle(waiting, exc)
            return
        self.on_request(len(texts), sum(tokens))
        start = 0
        for waiting in group:
            _settle(waiting, vectors[start : start + len(waiting.texts)])
            start += len(waiting.texts)


def _settle(waiting: _Waiting, outcome: list[list[float]] | BaseException) -> None:
    if waiting.future.done():  # its item was cancelled meanwhile
        return
    if isinstance(outcome, BaseException):
        waiting.future.set_exception(outcome)
    else:
        waiting.future.set_result(outcome)


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
        extraction: ExtractionPool,
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
        self.extraction = extraction  # the run's, started and closed with its other parts
        self.scopes = AclScopes(self._read_scope, source.folder_inherits)
        # Chunks' token counts are exact in the chunker's encoding: the embedder need not recount.
        self._pass_tokens = getattr(embedder, "encoding", None) == getattr(chunker, "encoding", "")
        linger_s = settings.sync.embed_linger_ms / 1000
        self.batcher = (
            EmbeddingBatcher(
                embedder, linger_s, settings.embedding.batch_inputs, on_request=self._count_request,
                pass_tokens=self._pass_tokens,
            )
            if linger_s > 0
            else None
        )

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

    async def acl(
        self, item: SourceItem, indexed: IndexedItem | None = None, *, table: AclTable | None = None, keep: bool = False
    ) -> Acl:
        """The item's readers; raises PermissionsUnreadable (fail closed) when unknown.

        With `keep` (a delta run), an item that a delta page listed without a sharing change,
        in the same folder as before, keeps the readers its index documents carry, when
        `table` knows them (a moved item may inherit from elsewhere now). Otherwise they come
        from the item's permission scope (`ingest/acl_scopes.py`). ACLs found are added to
        `table`.
        """
        if (
            keep
            and table is not None
            and indexed is not None
            and item.inherits is not None  # listed by a delta page that reports sharing changes
            and not item.shared_changed
            and tuple(indexed.ancestor_ids) == tuple(item.ancestor_ids)
        ):
            kept = table.get(indexed.acl_hash)
            if kept is not None:
                self.report.index["acls_kept"] += 1
                return kept
        result = await self.scopes.result_for(item)
        if result.unresolved:
            self.report.unresolved_grants[item.ref.item_id] = sorted(set(result.unresolved))
        acl = result.acl
        if max(len(acl.group_ids), len(acl.user_ids)) > NATIVE_ACL_MAX_VALUES:
            # spindex's own filter has no cap, but a reader using the service's native ACLs would.
            self.report.large_acls[item.ref.item_id] = {"groups": len(acl.group_ids), "users": len(acl.user_ids)}
        if table is not None:
            table.add([acl])
        return acl

    async def _read_scope(self, drive: DriveRef, item_id: str) -> AclResult:
        """The readers of one permission scope: an item, a folder or the library root."""
        permissions = await self.source.permissions_of(drive, item_id)
        self.report.index["permission_reads"] += 1
        return await permissions_to_acl(permissions, site=drive.site, policy=self.settings.acl, site_groups=self.site_groups)

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
        chunks = await self._chunks(item)
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

    async def _chunks(self, item: SourceItem) -> list[Chunk]:
        """The item's chunks: from its staged text, else downloaded and extracted (in a worker)."""
        # A chunker of another type may not be rebuildable in a worker: it chunks here.
        params = (
            (self.chunker.chunk_tokens, self.chunker.overlap_tokens, self.chunker.encoding)
            if type(self.chunker) is Chunker
            else None
        )
        extracted = await self.staging.get(item.ref, item.ctag) if self.staging is not None else None
        if extracted is not None:
            self.report.index["staged_reads"] += 1
            if params is None:
                return await asyncio.to_thread(self.chunker.chunk, extracted)
            return await self.extraction.run(functools.partial(chunk_text, extracted, params))
        content = await self.source.fetch(item)
        crash_point("download")
        if len(content) > self.settings.max_file_bytes:
            raise TooLarge(f"download of {len(content)} bytes is over the {self.settings.sync.max_file_mb:g} MB limit")
        try:
            if params is not None:
                job = functools.partial(
                    extract_and_chunk, item.name, item.mime_type, content, params, self.staging is not None
                )
                del content  # only the job holds the bytes now: they go once a worker has them
                extracted, chunks = await self.extraction.run(job)
            else:
                extracted = await self.extraction.run(functools.partial(extract, item.name, item.mime_type, content))
                del content
                chunks = await asyncio.to_thread(self.chunker.chunk, extracted)
        except BadInput as exc:
            if self.staging is not None:
                await self.staging.put_bad(item.ref, item.ctag, exc)
            raise
        if self.staging is not None and extracted is not None:
            await self.staging.put(item.ref, item.ctag, extracted)
        return chunks

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
        pending = list(todo.values())
        if self.batcher is not None and pending:
            result = await self.batcher.embed([c.text for c in pending], [c.token_count for c in pending])
            found.update((chunk.content_hash, vector) for chunk, vector in zip(pending, result, strict=True))
        else:
            batch_size = self.settings.embedding.batch_inputs
            for start in range(0, len(pending), batch_size):
                part = pending[start : start + batch_size]
                tokens = [c.token_count for c in part]
                result = await self.embedder.embed([c.text for c in part], tokens if self._pass_tokens else None)
                self._count_request(len(part), sum(tokens))
                for chunk, vector in zip(part, result, strict=True):
                    found[chunk.content_hash] = vector
        self.report.embedding["reused"] += len(wanted) - len(todo)
        budget = getattr(self.embedder, "budget", None)
        if budget is not None:
            self.report.embedding["budget_wait_s"] = round(budget.waited_s, 3)
        return found

    def _count_request(self, inputs: int, tokens: int) -> None:
        self.report.embedding["requests"] += 1
        self.report.embedding["inputs"] += inputs
        self.report.embedding["tokens"] += tokens

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
