"""One item's cheapest path into the index (DESIGN invariant 4).

- listing says it cannot be indexed (too large, unsupported, empty, known bad): skip, no download;
- content unchanged (`cTag` equal): merge metadata and/or ACL, no download, no embedding;
- content new or changed: download, extract, chunk, embed only chunks whose text hash is new,
  upsert, then prune the item's stale chunks.

Extraction and chunking run in a process pool (`ExtractionPool`), so that parsing a PDF never
holds the event loop's interpreter lock; embedding requests of concurrent items may share one
request (`EmbeddingBatcher`, when `sync.embed_linger_ms` > 0).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import multiprocessing
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ingest.acl import AclResult, SiteGroupResolver, permissions_to_acl
from ingest.acl_scopes import AclScopes, AclTable
from ingest.chunking import Chunker
from ingest.config import Settings
from ingest.embedding import Embedder
from ingest.embedding.base import MAX_TOKENS_PER_REQUEST
from ingest.errors import BadInput, CorruptFile, EmptyFile, SystemicError, TooLarge, UnsupportedFormat
from ingest.extract import extract, is_supported
from ingest.faults import crash_point
from ingest.index.base import IndexStore
from ingest.models import Acl, Chunk, DriveRef, Extracted, IndexDoc, IndexedItem, SourceItem, chunk_key
from ingest.report import RunReport
from ingest.source import SharePointSource
from ingest.staging import Staging
from ingest.state.base import KnownBad


log = logging.getLogger(__name__)
T = TypeVar("T")

UNREADABLE_ACL_HASH = "unreadable"  # stored with empty group_ids/user_ids: nobody matches
NATIVE_ACL_MAX_VALUES = 1000  # values per permission field of Azure AI Search's native ACLs (preview)
WORKER_MAX_TASKS = 500  # documents per extraction worker before it is replaced: bounds parser caches


@dataclass(slots=True)
class Outcome:
    """What happened to one item: a change kind from `report.CHANGE_KINDS`."""

    kind: str


ChunkParams = tuple[int, int, str]  # chunk_tokens, overlap_tokens, encoding: enough to rebuild a Chunker


def extract_and_chunk(
    name: str, mime_type: str | None, content: bytes, params: ChunkParams, keep_text: bool
) -> tuple[Extracted | None, list[Chunk]]:
    """A file's chunks, and its extracted text when `keep_text`; BadInput when it cannot be indexed.

    Pure and importable by name, so that a worker process can run it.
    """
    extracted = extract(name, mime_type, content)
    return (extracted if keep_text else None), _chunker(params).chunk(extracted)


def chunk_text(extracted: Extracted, params: ChunkParams) -> list[Chunk]:
    """The chunks of already extracted text (a staged extraction), for a worker process."""
    return _chunker(params).chunk(extracted)


@functools.lru_cache(maxsize=4)
def _chunker(params: ChunkParams) -> Chunker:
    return Chunker(*params)


def _main_reruns_safely() -> bool:
    """False when workers would re-run the main script: they import it (as Python's spawn and
    forkserver do), and a script without an `if __name__ == "__main__":` guard would sync again."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name.endswith("__main__"):
        return True  # `python -m package`: workers do not import it
    path = getattr(main, "__file__", None)
    if not path:
        return True  # an interactive session: nothing to re-run
    try:
        return "__main__" in Path(path).read_text(errors="replace")
    except OSError:
        return True


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class ExtractionPool:
    """Extraction and chunking off the event loop, in worker processes where the platform allows.

    `processes` workers (None: one per core) start on first use, forked from a server that has
    spindex's modules loaded, so a worker costs milliseconds to start. Where processes cannot
    be had (no fork server or semaphores, `processes=0`, or a main script without an
    `if __name__ == "__main__":` guard, which workers would re-run) the work runs in threads
    of this process instead. A worker that dies takes its jobs with it: each is retried once in a
    fresh pool, and a document that kills a second worker is reported as corrupt.
    """

    def __init__(self, processes: int | None) -> None:
        self.processes = _cores() if processes is None else processes
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._use_threads = self.processes == 0
        if not self._use_threads and not _main_reruns_safely():
            log.warning("the main script has no `if __name__ == \"__main__\":` guard; extracting in threads")
            self._use_threads = True

    @property
    def uses_processes(self) -> bool:
        """True while jobs go to worker processes."""
        return not self._use_threads

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor | None:
        if self._use_threads:
            return None
        if self._pool is None:
            try:
                method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
                context = multiprocessing.get_context(method)
                if method == "forkserver":
                    context.set_forkserver_preload(["ingest.item_sync"])
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    self.processes, mp_context=context, max_tasks_per_child=WORKER_MAX_TASKS
                )
            except (OSError, NotImplementedError, ImportError, ValueError) as exc:
                log.warning("no process pool for extraction (%s); using threads", type(exc).__name__)
                self._use_threads = True
                return None
        return self._pool

    async def run(self, job: Callable[[], T]) -> T:
        """`job()` (a picklable partial of a module-level function) in a worker; its result or error."""
        for attempt in (1, 2):
            pool = self._executor()
            if pool is None:
                break
            try:
                return await asyncio.get_running_loop().run_in_executor(pool, job)
            except BrokenProcessPool:
                if self._pool is pool:  # the first of its victims replaces it
                    self._pool = None
                    pool.shutdown(wait=False, cancel_futures=True)
                if attempt == 2:
                    raise CorruptFile("extraction crashed its worker process twice") from None
            except (OSError, RuntimeError) as exc:  # the pool could not start its workers
                log.warning("extraction workers unavailable (%s); using threads", type(exc).__name__)
                self._use_threads = True
                break
        return await asyncio.to_thread(job)

    def close(self) -> None:
        """Stop the workers; later jobs would start a new pool."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


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
        try:
            vectors = await self.embedder.embed(texts)
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
        self.on_request(len(texts), sum(sum(waiting.tokens) for waiting in group))
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
        self.extraction = ExtractionPool(settings.sync.extract_processes)
        self.scopes = AclScopes(self._read_scope, source.folder_inherits)
        linger_s = settings.sync.embed_linger_ms / 1000
        self.batcher = (
            EmbeddingBatcher(embedder, linger_s, settings.embedding.batch_inputs, on_request=self._count_request)
            if linger_s > 0
            else None
        )

    def close(self) -> None:
        """Stop the extraction workers; call it when the run is over."""
        self.extraction.close()

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
                result = await self.embedder.embed([c.text for c in part])
                self._count_request(len(part), sum(c.token_count for c in part))
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
