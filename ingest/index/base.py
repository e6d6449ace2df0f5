"""The contract every index backend implements, and the errors for misusing it.

`IndexStore` is one physical index; `IndexCatalog` is the set of physical indexes of one
service (a directory for the local backend, a search service for Azure) and the aliases that
readers query. Both backends keep the same promises, so the pipeline never knows which it has.

Errors:

    IndexUnavailable (ingest.errors)  the storage failed: the run stops, commits nothing unfinished
    IndexContractError                the caller broke the contract (a bug or an operator typo)
    ├── InvalidIndexName              not a valid Azure AI Search index or alias name
    ├── IndexNotFound                 no such physical index
    ├── IndexAlreadyExists            create_index on an existing name
    ├── IndexInUse                    delete_index on an alias target; alias/index name clash
    ├── InvalidDocument               a document or merge that the index definition refuses
    └── IndexClosed                   a store used after close() or after its index's deletion
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from ingest.errors import SpindexError
from ingest.models import IndexDoc, IndexedItem, ItemRef, SearchHit
from ingest.query import SecurityFilter

MIXED_VALUE = "\x00mixed"
"""What `IndexedItem` reports for a field on which an item's chunks disagree.

Azure applies a batch document by document, so an interrupted merge can leave an item half
rewritten. No SharePoint value equals this one, so the pipeline sees a difference and rewrites
the item, which heals it."""


class IndexContractError(SpindexError, ValueError):
    """The index was asked for something its contract does not allow."""


class InvalidIndexName(IndexContractError):
    """A name that Azure AI Search would refuse for an index or an alias."""


class IndexNotFound(IndexContractError, LookupError):
    """The named physical index does not exist."""


class IndexAlreadyExists(IndexContractError):
    """A physical index (or an alias) with this name already exists."""


class IndexInUse(IndexContractError):
    """The index is the target of an alias, or the name is taken by an alias."""


class InvalidDocument(IndexContractError):
    """A document or merge that does not fit the index definition."""


class IndexClosed(IndexContractError):
    """The store was closed, or its index deleted, before this call."""


@runtime_checkable
class IndexStore(Protocol):
    """One physical index. Every write is all-or-nothing per call on the local backend."""

    name: str

    async def upsert(self, docs: Sequence[IndexDoc]) -> None:
        """Insert each document, or replace the one with the same key, in full."""
        ...

    async def merge(self, item: ItemRef, fields: Mapping[str, object]) -> None:
        """Set `fields` on every chunk of `item` (metadata, or group_ids/user_ids/acl_hash).

        A no-op when the item has no chunks. Per-chunk and identity fields (key, parent key,
        chunk number, content, vector, content hash, page range) cannot be merged.
        """
        ...

    async def prune(self, item: ItemRef, keep: Collection[str]) -> None:
        """Delete the chunks of `item` whose key is not in `keep`."""
        ...

    async def delete_item(self, item: ItemRef) -> None:
        """Delete every chunk of `item`; a no-op when there are none."""
        ...

    async def indexed_state(self, items: Sequence[ItemRef]) -> Mapping[ItemRef, IndexedItem]:
        """The manifest of each item that has chunks, read in bulk; items with none are absent."""
        ...

    async def drive_items(self, drive_id: str) -> set[ItemRef]:
        """Every item that has at least one chunk in the library `drive_id`."""
        ...

    async def items_under(self, drive_id: str, folder_id: str) -> set[ItemRef]:
        """Every item of library `drive_id` with `folder_id` in its `ancestor_ids`."""
        ...

    async def vectors(self, keys: Sequence[str]) -> Mapping[str, list[float]]:
        """The stored vector of each chunk key that exists; missing keys are absent."""
        ...

    async def search(
        self,
        text: str,
        vector: Sequence[float] | None,
        *,
        security: SecurityFilter | None,
        top: int = 10,
    ) -> list[SearchHit]:
        """The best `top` chunks for a hybrid query, best first, among those `security` permits.

        `security=None` searches untrimmed and is for administrators only.
        """
        ...

    async def documents(self) -> list[dict[str, object]]:
        """Every document with every field, security fields included, sorted by key."""
        ...

    async def count(self, *, drive_id: str | None = None) -> int:
        """The number of chunks, in the whole index or in one library."""
        ...

    async def close(self) -> None:
        """Release the store; later calls raise `IndexClosed`. Closing twice is harmless."""
        ...


@runtime_checkable
class IndexCatalog(Protocol):
    """The physical indexes of one service, and the aliases readers query."""

    async def create_index(self, name: str, dimensions: int) -> IndexStore:
        """Create an empty index from `schemas/index.json`; `IndexAlreadyExists` if it exists."""
        ...

    async def open_index(self, name: str) -> IndexStore:
        """Open an existing physical index (not an alias); `IndexNotFound` if it is missing."""
        ...

    async def list_indexes(self) -> list[str]:
        """The names of all physical indexes, sorted."""
        ...

    async def delete_index(self, name: str) -> None:
        """Delete a physical index.

        Raises `IndexInUse` if an alias points at it, `IndexNotFound` if it does not exist.
        """
        ...

    async def get_alias(self, alias: str) -> str | None:
        """The physical index the alias points at, or None when there is no such alias."""
        ...

    async def set_alias(self, alias: str, index: str) -> None:
        """Create the alias or repoint it at `index`, atomically; `index` must exist."""
        ...


_MANIFEST_FIELDS = ("content_tag", "acl_hash", "embedding_model", "title", "url", "path",
                    "last_modified", "ancestor_ids")


def indexed_item_from_chunks(ref: ItemRef, chunks: Iterable[Mapping[str, object]]) -> IndexedItem:
    """The manifest of `ref` from its chunks (each a mapping with at least the manifest fields,
    `id`, `chunk_no` and `content_hash`).

    Item-wide fields come from the chunks when they all agree, else are `MIXED_VALUE`.
    Raises `ValueError` when `chunks` is empty: an item with no chunks has no manifest.
    """
    ordered = sorted(chunks, key=lambda c: (_int(c.get("chunk_no")), str(c["id"])))
    if not ordered:
        raise ValueError(f"no chunks for item {ref}")
    values: dict[str, object] = {}
    for field in _MANIFEST_FIELDS:
        seen = {_hashable(ordered[0].get(field))}
        seen.update(_hashable(c.get(field)) for c in ordered[1:])
        values[field] = _hashable(ordered[0].get(field)) if len(seen) == 1 else MIXED_VALUE
    return IndexedItem(
        ref=ref,
        content_tag=_opt_str(values["content_tag"]),
        acl_hash=str(values["acl_hash"] or ""),
        embedding_model=str(values["embedding_model"] or ""),
        title=str(values["title"] or ""),
        url=str(values["url"] or ""),
        path=str(values["path"] or ""),
        last_modified=_opt_str(values["last_modified"]),
        chunks={str(c["id"]): str(c.get("content_hash") or "") for c in ordered},
        ancestor_ids=values["ancestor_ids"] if isinstance(values["ancestor_ids"], tuple) else (MIXED_VALUE,),
    )


def _hashable(value: object) -> object:
    """Lists (collection fields) as tuples, so that chunk values can be compared in a set."""
    return tuple(value) if isinstance(value, list) else value


def _int(value: object) -> int:
    return value if isinstance(value, int) else -1


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)
