"""The Azure AI Search backend: `AzureIndexCatalog` (indexes and aliases of one search service)
and `AzureIndexStore` (one physical index), on azure-search-documents (REST 2026-04-01).

Both keep the promises of `ingest/index/base.py`, with these differences from the local
backend, all imposed by the service:

- Writes are applied document by document, not all-or-nothing: a failed call may leave part of
  a batch written. Every per-document result is checked and retried (`azure_transport.py`); the
  keys that still fail are raised in `IndexWriteFailed`, so the caller never commits them.
- `group_ids` / `user_ids` are not retrievable, so `documents()` returns them only where the
  service returns them (never, with `schemas/index.json`); security is observed through
  `search(..., security=...)`, which filters on them server-side.
- Reads are near-real-time: a document is searchable about a second after its write returns.

One retry loop: the SDK clients are built with `retry_total=0`, and every call goes through
the `Retrier`, which honours Retry-After on 429/503.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError
from azure.search.documents.aio import SearchClient
from azure.search.documents.indexes.aio import SearchIndexClient
from azure.search.documents.indexes.models import SearchAlias, SearchIndex
from azure.search.documents.models import VectorizedQuery

from ingest.errors import IndexUnavailable
from ingest.index.azure_transport import (
    SEARCH_BATCH_MAX_ACTIONS,
    SEARCH_BATCH_MAX_BYTES,
    SEARCH_SCOPE,
    Credential,
    IndexWriteFailed,
    Refusals,
    call,
    check_endpoint,
    client_kwargs,
    search_credential,
    write_actions,
)
from ingest.index.base import (
    _MANIFEST_FIELDS,
    IndexAlreadyExists,
    IndexClosed,
    IndexContractError,
    IndexInUse,
    IndexNotFound,
    InvalidDocument,
    indexed_item_from_chunks,
)
from ingest.index.local_search import query_terms
from ingest.index.schema import (
    check_document,
    check_merge,
    fields_of,
    load_index_definition,
    validate_document_key,
    validate_index_name,
    vector_dimensions,
)
from ingest.models import IndexDoc, IndexedItem, ItemRef, SearchHit
from ingest.query import SecurityFilter
from ingest.retry import Retrier

__all__ = ["SEARCH_BATCH_MAX_ACTIONS", "SEARCH_BATCH_MAX_BYTES", "SEARCH_PAGE_MAX",
           "SEARCH_SCOPE", "SEARCH_SKIP_MAX", "AzureIndexCatalog", "AzureIndexStore",
           "IndexWriteFailed"]

SEARCH_PAGE_MAX = 1000  # results per search page (Search Documents REST reference, `top`)
SEARCH_SKIP_MAX = 100_000  # largest `skip` (Search Documents REST reference, `skip`)
CANDIDATES_MIN = 50  # nearest neighbours each vector query ranks, as the local backend does
_ITEMS_PER_QUERY = 50  # parent keys per `search.in` filter in indexed_state
_KEYS_PER_QUERY = 100  # chunk keys per vectors() query: keeps a response of vectors small
_SCAN_PASSES = 3  # listings repeated when documents moved while being paged through
_HEX = "0123456789abcdef"
# What `indexed_item_from_chunks` reads: the per-chunk identity and the item-wide manifest.
_MANIFEST_SELECT = ("id", "parent_key", "chunk_no", "content_hash", *_MANIFEST_FIELDS)
_HIT_SELECT = ["id", "parent_key", "title", "url", "path", "content", "source_kind",
               "page_start", "page_end"]
# Operators of the simple query syntax: escaped so that any query text is plain terms.
_SIMPLE_SYNTAX = re.compile(r'([+\-&|!(){}\[\]^"~*?:\\/])')

T = TypeVar("T")


def _quote(value: str) -> str:
    """An OData string literal: quotes doubled, as OData escapes them."""
    return "'" + value.replace("'", "''") + "'"


def _groups(values: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


class AzureIndexCatalog:
    """The indexes and aliases of one Azure AI Search service; see `IndexCatalog`.

    `credential`: an `AzureKeyCredential` (admin key), or any azure-identity credential, sync
    or async (scope `https://search.azure.com/.default`; roles Search Service Contributor and
    Search Index Data Contributor). The caller owns the credential and closes it.
    """

    def __init__(self, endpoint: str, credential: Credential, *,
                 retrier: Retrier | None = None, skip_limit: int = SEARCH_SKIP_MAX) -> None:
        """Use the service at `endpoint`; `ConfigError` for a non-https endpoint off loopback.

        `skip_limit` is the service's largest `skip`; tests lower it to exercise listings
        that must be split to get past it.
        """
        self.endpoint, self._plain_http = check_endpoint(endpoint)
        self._credential = search_credential(credential)
        self._retrier = retrier or Retrier()
        self._skip_limit = skip_limit
        self._client = SearchIndexClient(self.endpoint, self._credential, **self._client_kwargs())
        self._open: dict[str, weakref.WeakSet[AzureIndexStore]] = {}

    def _client_kwargs(self) -> dict[str, Any]:
        return client_kwargs(self._credential, plain_http=self._plain_http)

    async def _call(self, what: str, operation: Callable[[], Awaitable[T]],
                    refusals: Refusals | None = None) -> T:
        return await call(self._retrier, what, operation, refusals)

    def _store(self, name: str, definition: Mapping[str, Any]) -> AzureIndexStore:
        client = SearchClient(self.endpoint, name, self._credential, **self._client_kwargs())
        store = AzureIndexStore(client, name, definition, retrier=self._retrier,
                                skip_limit=self._skip_limit)
        self._open.setdefault(name, weakref.WeakSet()).add(store)
        return store

    async def create_index(self, name: str, dimensions: int) -> AzureIndexStore:
        """Create an empty index from `schemas/index.json`; `IndexAlreadyExists` if the name is
        an index or an alias."""
        definition = load_index_definition(name, dimensions)
        if await self.get_alias(name) is not None:
            raise IndexAlreadyExists(f"{name!r} is already the name of an alias")

        def exists(exc: HttpResponseError) -> Exception:
            return IndexAlreadyExists(f"index {name!r} already exists")

        # PUT with If-None-Match: * creates, and never overwrites an index that exists.
        await self._call(f"create index {name!r}", lambda: self._client.create_or_update_index(
            SearchIndex(definition), match_condition=MatchConditions.IfMissing),
            {409: exists, 412: exists})
        return self._store(name, definition)

    async def _definition_or_none(self, name: str) -> dict[str, Any] | None:
        """The definition of physical index `name`, or None (missing, or an alias's name)."""
        try:
            found = await self._call(f"get index {name!r}", lambda: self._client.get_index(name),
                                     {404: lambda exc: IndexNotFound(name)})
        except IndexNotFound:
            return None
        # An alias works for reading an index definition: the answer then names its target.
        return found.as_dict() if found.name == name else None

    async def open_index(self, name: str) -> AzureIndexStore:
        """Open an existing physical index (not an alias); `IndexNotFound` if missing."""
        validate_index_name(name)
        definition = await self._definition_or_none(name)
        if definition is None:
            raise IndexNotFound(f"index {name!r} does not exist")
        return self._store(name, definition)

    async def list_indexes(self) -> list[str]:
        """The physical index names that spindex could use (valid index names), sorted."""
        async def names() -> list[str]:
            return [n async for n in self._client.list_index_names()]

        found = await self._call("list indexes", names)
        valid = []
        for name in found:
            try:
                valid.append(validate_index_name(name))
            except IndexContractError:
                continue  # not ours
        return sorted(valid)

    async def aliases(self) -> dict[str, str]:
        """Every alias and the index it points at (not part of the protocol; for the CLI)."""
        async def listed() -> dict[str, str]:
            return {a.name: a.indexes[0] async for a in self._client.list_aliases() if a.indexes}

        return await self._call("list aliases", listed)

    async def delete_index(self, name: str) -> None:
        """Delete an index no alias points at; stores opened on it through this catalog close.

        Raises `IndexInUse` if an alias points at it, `IndexNotFound` if it does not exist.
        """
        validate_index_name(name)
        aliases = await self.aliases()
        users = sorted(a for a, target in aliases.items() if target == name)
        if users:
            raise IndexInUse(f"index {name!r} is the target of alias(es) {', '.join(users)}")
        # The SDK counts a 404 on DELETE as success, so existence is checked first.
        if name in aliases or await self._definition_or_none(name) is None:
            raise IndexNotFound(f"index {name!r} does not exist")
        # The service refuses (400) deleting an alias target: an alias set since our check.
        await self._call(f"delete index {name!r}", lambda: self._client.delete_index(name), {
            400: lambda exc: IndexInUse(f"index {name!r} cannot be deleted: {exc.message}")})
        for store in list(self._open.pop(name, ())):
            await store.close()

    async def get_alias(self, alias: str) -> str | None:
        """The index `alias` points at, or None when there is no such alias."""
        validate_index_name(alias, kind="alias")
        try:
            found = await self._call(f"get alias {alias!r}", lambda: self._client.get_alias(alias),
                                     {404: lambda exc: IndexNotFound(alias)})
        except IndexNotFound:
            return None
        return found.indexes[0] if found.indexes else None

    async def set_alias(self, alias: str, index: str) -> None:
        """Create `alias` or repoint it at existing index `index`, in one PUT (atomic).

        The service takes up to 10 s to propagate the change: queries through the alias may
        reach the previous index until then, so keep it that long before deleting it.
        """
        validate_index_name(alias, kind="alias")
        validate_index_name(index)
        if await self._definition_or_none(alias) is not None:
            raise IndexInUse(f"{alias!r} is the name of a physical index, not an alias")
        if await self._definition_or_none(index) is None:
            raise IndexNotFound(f"index {index!r} does not exist")
        await self._call(f"set alias {alias!r}", lambda: self._client.create_or_update_alias(
            SearchAlias(name=alias, indexes=[index])),
            {404: lambda exc: IndexNotFound(f"index {index!r} does not exist")})

    async def close(self) -> None:
        """Release the service client and every store opened through this catalog."""
        for stores in list(self._open.values()):
            for store in list(stores):
                await store.close()
        self._open.clear()
        await self._client.close()

    async def __aenter__(self) -> AzureIndexCatalog:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AzureIndexStore:
    """One physical index of an Azure AI Search service; see `IndexStore` for the promises.

    Made by `AzureIndexCatalog.create_index` / `open_index`. Field types and vector dimensions
    come from the index's own definition, as the service holds it.
    """

    def __init__(self, client: SearchClient, name: str, definition: Mapping[str, Any], *,
                 retrier: Retrier, skip_limit: int = SEARCH_SKIP_MAX) -> None:
        """Wrap `client`, bound to index `name` whose definition is `definition`."""
        self.name = name
        self.definition: dict[str, Any] = dict(definition)
        self.dimensions = vector_dimensions(definition)
        self._types = fields_of(definition)
        fields = definition["fields"]
        self._key = next(f["name"] for f in fields if f.get("key"))
        self._vector = next(f["name"] for f in fields if f["type"] == "Collection(Edm.Single)")
        self._retrievable = [f["name"] for f in fields if f.get("retrievable", True)]
        # An index made from an older schema may lack newer manifest fields: select what exists.
        self._manifest = [n for n in _MANIFEST_SELECT if n in self._types]
        self._client, self._retrier, self._skip_limit = client, retrier, skip_limit
        self._closed = False

    # -- plumbing -------------------------------------------------------------------------

    def _guard(self) -> None:
        if self._closed:
            raise IndexClosed(f"index store {self.name!r} is closed")

    def _gone(self, exc: HttpResponseError) -> Exception:
        return IndexNotFound(f"index {self.name!r} no longer exists")

    async def _call(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        self._guard()
        return await call(self._retrier, f"{what} on index {self.name!r}", operation,
                          {404: self._gone})

    async def _write(self, actions: Sequence[dict[str, Any]], operation: str,
                     ok_statuses: frozenset[int] = frozenset()) -> None:
        self._guard()
        if actions:
            await write_actions(self._client, self.name, actions, retrier=self._retrier,
                                operation=operation, key_field=self._key, ok_statuses=ok_statuses,
                                refusals={404: self._gone})

    async def _page(self, filter_: str | None, select: Sequence[str], *, skip: int = 0,
                    top: int = SEARCH_PAGE_MAX, count: bool = False
                    ) -> tuple[list[dict[str, Any]], int | None]:
        """One page of a filter-only query (rows without `@search.*` keys), and the total
        number of matches when `count`."""
        async def run() -> tuple[list[dict[str, Any]], int | None]:
            results = await self._client.search(
                search_text=None, filter=filter_, select=list(select), top=top,
                skip=skip or None, include_total_count=count or None)
            rows = [{k: v for k, v in r.items() if not k.startswith("@search.")}
                    async for r in results]
            return rows, (await results.get_count() if count else None)

        return await self._call("search", run)

    async def _scan(self, filter_: str | None, select: Sequence[str]) -> list[dict[str, Any]]:
        """Every document matching `filter_` (all when None), with the `select` fields.

        Paged with `skip`; where `skip` cannot reach the end, split into parent-key prefix
        ranges. A listing that comes back shorter than its count (documents moved while it was
        paged through) is repeated; `IndexUnavailable` if it never settles.
        """
        select = list(dict.fromkeys([self._key, *select]))
        for _ in range(_SCAN_PASSES):
            rows, total = await self._scan_range(filter_, select, "")
            if len(rows) >= total:
                return list(rows.values())
        raise IndexUnavailable(f"listing index {self.name!r} did not settle: documents kept "
                               "moving while it was paged through")

    async def _scan_range(self, filter_: str | None, select: list[str],
                          prefix: str) -> tuple[dict[str, dict[str, Any]], int]:
        ranged = filter_
        if prefix:  # parent keys are lowercase hex: [p, p + 'g') holds exactly those under p
            bounds = f"parent_key ge {_quote(prefix)} and parent_key lt {_quote(prefix + 'g')}"
            ranged = bounds if filter_ is None else f"({filter_}) and {bounds}"
        page, total = await self._page(ranged, select, count=True)
        total = total or 0
        if total > self._skip_limit + SEARCH_PAGE_MAX and len(prefix) < 40:
            rows: dict[str, dict[str, Any]] = {}
            for digit in _HEX:
                found, _ = await self._scan_range(filter_, select, prefix + digit)
                rows.update(found)
            return rows, total
        rows = {str(r[self._key]): r for r in page}
        skip = len(page)
        while len(page) == SEARCH_PAGE_MAX and skip <= self._skip_limit:
            page, _ = await self._page(ranged, select, skip=skip)
            rows.update((str(r[self._key]), r) for r in page)
            skip += len(page)
        return rows, total

    async def _chunk_keys(self, item: ItemRef) -> list[str]:
        rows = await self._scan(f"parent_key eq {_quote(item.parent_key)}", [])
        return sorted(str(r[self._key]) for r in rows)

    # -- writes ---------------------------------------------------------------------------

    async def upsert(self, docs: Sequence[IndexDoc]) -> None:
        """Insert or replace each document by key (`mergeOrUpload` with every field).

        Every document is checked before anything is sent (`InvalidDocument`); documents the
        service still refuses after retries are raised in `IndexWriteFailed`.
        """
        self._guard()
        actions: list[dict[str, Any]] = []
        seen: set[str] = set()
        for doc in docs:
            values = check_document(doc, self._types, dimensions=self.dimensions)
            if doc.id in seen:
                raise InvalidDocument(f"document key {doc.id} appears twice in one upsert")
            seen.add(doc.id)
            # Edm.Single holds float32: send what will be stored, as plain (JSON-able) floats.
            values[self._vector] = np.asarray(values[self._vector], dtype=np.float32).tolist()
            actions.append({"@search.action": "mergeOrUpload", **values})
        await self._write(actions, "upsert")

    async def merge(self, item: ItemRef, fields: Mapping[str, object]) -> None:
        """Set item-wide `fields` on every chunk of `item`; a no-op when it has none."""
        values = check_merge(fields, self._types, dimensions=self.dimensions)
        if not values:
            return
        actions = [{"@search.action": "merge", self._key: key, **values}
                   for key in await self._chunk_keys(item)]
        # 404: the chunk was deleted since it was listed; there is nothing left to merge.
        await self._write(actions, "merge", ok_statuses=frozenset({404}))

    async def prune(self, item: ItemRef, keep: Collection[str]) -> None:
        """Delete the chunks of `item` whose key is not in `keep`."""
        if isinstance(keep, str):
            raise IndexContractError("prune(keep=...) takes a collection of keys, not one string")
        kept = set(keep)
        await self._write([{"@search.action": "delete", self._key: key}
                           for key in await self._chunk_keys(item) if key not in kept], "prune")

    async def delete_item(self, item: ItemRef) -> None:
        """Delete every chunk of `item`; a no-op when there are none."""
        await self._write([{"@search.action": "delete", self._key: key}
                           for key in await self._chunk_keys(item)], "delete_item")

    # -- reads ----------------------------------------------------------------------------

    async def indexed_state(self, items: Sequence[ItemRef]) -> Mapping[ItemRef, IndexedItem]:
        """The manifest of each item that has chunks, read with one query per
        `_ITEMS_PER_QUERY` items; items with no chunks are absent."""
        by_parent = {item.parent_key: item for item in items}
        grouped: dict[str, list[dict[str, Any]]] = {}
        for group in _groups(list(by_parent), _ITEMS_PER_QUERY):
            keys = ",".join(validate_document_key(k) for k in group)  # hex: no delimiter inside
            for row in await self._scan(f"search.in(parent_key, '{keys}', ',')", self._manifest):
                grouped.setdefault(str(row["parent_key"]), []).append(row)
        return {by_parent[p]: indexed_item_from_chunks(by_parent[p], rows)
                for p, rows in grouped.items() if p in by_parent}

    async def drive_items(self, drive_id: str) -> set[ItemRef]:
        """Every item with at least one chunk in library `drive_id`."""
        rows = await self._scan(f"drive_id eq {_quote(drive_id)}", ["drive_id", "item_id"])
        return {ItemRef(str(r["drive_id"]), str(r["item_id"])) for r in rows}

    async def items_under(self, drive_id: str, folder_id: str) -> set[ItemRef]:
        """Every item of library `drive_id` with folder `folder_id` among its `ancestor_ids`."""
        filter_ = (f"drive_id eq {_quote(drive_id)} and "
                   f"ancestor_ids/any(a: a eq {_quote(folder_id)})")
        rows = await self._scan(filter_, ["drive_id", "item_id"])
        return {ItemRef(str(r["drive_id"]), str(r["item_id"])) for r in rows}

    async def vectors(self, keys: Sequence[str]) -> Mapping[str, list[float]]:
        """The stored vector of each existing key; missing (or impossible) keys are absent."""
        wanted = []
        for key in dict.fromkeys(keys):
            try:
                wanted.append(validate_document_key(key))  # also keeps ',' out of search.in
            except InvalidDocument:
                continue  # a key the service cannot hold does not exist
        out: dict[str, list[float]] = {}
        for group in _groups(wanted, _KEYS_PER_QUERY):
            filter_ = f"search.in({self._key}, '{','.join(group)}', ',')"
            for row in await self._scan(filter_, [self._vector]):
                if row.get(self._vector):
                    out[str(row[self._key])] = [float(v) for v in row[self._vector]]
        return out

    async def search(
        self,
        text: str,
        vector: Sequence[float] | None,
        *,
        security: SecurityFilter | None,
        top: int = 10,
    ) -> list[SearchHit]:
        """Hybrid search (text and vector fused by the service's RRF), trimmed server-side by
        `security.to_odata()`; best `top` first.

        A query with no searchable term and no vector returns nothing; a filter that matches
        nobody returns nothing without a request. Query text is sent as plain terms: every
        operator of the simple syntax is escaped.
        """
        self._guard()
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise IndexContractError(f"top must be a positive integer, got {top!r}")
        if vector is not None:
            if len(vector) != self.dimensions:
                raise IndexContractError(f"query vector has {len(vector)} dimensions, "
                                         f"index {self.name!r} has {self.dimensions}")
            if not np.isfinite(np.asarray(vector, dtype=np.float64)).all():
                raise IndexContractError("query vector holds a NaN or infinite value")
        if security is not None and security.matches_nothing:
            return []
        terms = query_terms(text)
        if not terms and vector is None:
            return []
        vector_queries = None if vector is None else [VectorizedQuery(
            vector=np.asarray(vector, dtype=np.float64).tolist(),
            k_nearest_neighbors=max(top, CANDIDATES_MIN), fields=self._vector)]

        async def run() -> list[dict[str, Any]]:
            results = await self._client.search(
                search_text=" ".join(_SIMPLE_SYNTAX.sub(r"\\\1", t) for t in terms) or None,
                filter=None if security is None else security.to_odata(),
                vector_queries=vector_queries, select=_HIT_SELECT, top=top)
            return [r async for r in results]

        return [SearchHit(
            key=str(r["id"]), parent_key=str(r["parent_key"]), title=r.get("title") or "",
            url=r.get("url") or "", path=r.get("path") or "", content=r.get("content") or "",
            score=float(r.get("@search.score") or 0.0), source_kind=r.get("source_kind") or "",
            page_start=r.get("page_start"), page_end=r.get("page_end"),
        ) for r in (await self._call("search", run))[:top]]

    async def documents(self) -> list[dict[str, object]]:
        """Every document with every field the service returns, sorted by key.

        Differs from the local backend: fields marked `retrievable: false` (the security fields
        `group_ids` and `user_ids`) are never returned by Azure AI Search, so they are absent
        here. Observe security through `search(..., security=...)` instead.
        """
        rows = await self._scan(None, self._retrievable)
        return sorted(rows, key=lambda r: str(r[self._key]))

    async def count(self, *, drive_id: str | None = None) -> int:
        """The number of chunks, in the whole index or in library `drive_id`."""
        if drive_id is None:
            return int(await self._call("count", self._client.get_document_count))
        _, total = await self._page(f"drive_id eq {_quote(drive_id)}", [self._key], top=0,
                                    count=True)
        return int(total or 0)

    async def close(self) -> None:
        """Release the client; later calls raise `IndexClosed`. Closing twice is harmless."""
        if not self._closed:
            self._closed = True
            await self._client.close()
