"""What flows between the stages of a sync.

Graph JSON becomes these values in `ingest/source.py`; nothing downstream sees raw dicts.
Keys are derived here and only here, so that every backend agrees on them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

SourceKind = Literal["file", "page"]
DriveKind = Literal["documents", "pages"]


def text_hash(text: str) -> str:
    """The content hash of a chunk's text: equal text, equal hash, across runs and machines."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parent_key(drive_id: str, item_id: str) -> str:
    """The key shared by every chunk of one item: hex, so valid in Azure AI Search and never `_`-led."""
    return hashlib.sha256(f"{drive_id}\x1f{item_id}".encode()).hexdigest()[:40]


def chunk_key(parent: str, chunk_no: int) -> str:
    """The document key of chunk `chunk_no` of the item whose parent key is `parent`."""
    return f"{parent}-{chunk_no:05d}"


@dataclass(frozen=True, slots=True)
class SiteRef:
    """A SharePoint site as Graph names it (`host,siteGuid,webGuid`)."""

    site_id: str
    name: str
    web_url: str


@dataclass(frozen=True, slots=True)
class DriveRef:
    """A document library, or the Site Pages library (`kind="pages"`), of a site."""

    site: SiteRef
    drive_id: str
    name: str
    web_url: str
    kind: DriveKind = "documents"

    def state_key(self, index: str) -> str:
        """The name of this library's cursor and lease for one physical index.

        Each physical index has its own cursors, so a rebuild into `<alias>-v2` follows the
        library on its own while delta runs keep `<alias>-v1` current.
        """
        return f"{index}--drive-" + hashlib.sha256(self.drive_id.encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True, order=True)
class ItemRef:
    """One drive item (file, folder or page) by its stable Graph ids."""

    drive_id: str
    item_id: str

    @property
    def parent_key(self) -> str:
        """The parent key of this item's chunks in the index."""
        return parent_key(self.drive_id, self.item_id)


@dataclass(frozen=True, slots=True)
class Acl:
    """Who may read an item, flattened to ids the reader's filter can match.

    `group_ids` holds Entra group object ids and documented principal values; `user_ids` holds
    Entra user object ids. An item whose permissions could not be read has no `Acl` at all
    (`None` at the call site): that is "unknown", never the same as an empty Acl ("nobody").
    """

    group_ids: frozenset[str] = frozenset()
    user_ids: frozenset[str] = frozenset()

    @property
    def acl_hash(self) -> str:
        """A stable digest of the two sets, stored on every chunk to detect ACL-only changes."""
        payload = json.dumps([sorted(self.group_ids), sorted(self.user_ids)], separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:32]

    @property
    def is_empty(self) -> bool:
        """True when nobody may read the item."""
        return not self.group_ids and not self.user_ids


@dataclass(slots=True)
class SourceItem:
    """A file or a site page as SharePoint describes it, before any download."""

    ref: ItemRef
    drive: DriveRef
    kind: SourceKind
    name: str
    title: str
    web_url: str
    path: str
    mime_type: str | None = None
    size: int | None = None
    ctag: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    page_id: str | None = None
    shared_changed: bool = False
    ancestor_ids: tuple[str, ...] = ()
    inherits: bool | None = None  # True: listed as inheriting its folder's permissions; None: unknown

    def metadata_fields(self) -> dict[str, object]:
        """The index fields that a rename or move changes, and that a merge rewrites."""
        return {
            "title": self.title,
            "url": self.web_url,
            "path": self.path,
            "last_modified": self.last_modified,
            "ancestor_ids": list(self.ancestor_ids),
        }


@dataclass(slots=True)
class Section:
    """A run of text in reading order; `page` is the 1-based PDF page it came from, if any."""

    text: str
    page: int | None = None


@dataclass(slots=True)
class Extracted:
    """The text of one item, split into sections that keep their page numbers."""

    sections: list[Section]
    title: str | None = None

    @property
    def text(self) -> str:
        """All the text, sections joined by blank lines."""
        return "\n\n".join(s.text for s in self.sections if s.text)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of an item's text, the unit that is embedded and indexed."""

    chunk_no: int
    text: str
    content_hash: str
    token_count: int
    page_start: int | None = None
    page_end: int | None = None


@dataclass(slots=True)
class IndexDoc:
    """One index document: a chunk with its item's metadata and security fields.

    Field names are those of `schemas/index.json`.
    """

    id: str
    parent_key: str
    chunk_no: int
    chunk_count: int
    content: str
    content_vector: list[float]
    content_hash: str
    embedding_model: str
    title: str
    url: str
    path: str
    site_id: str
    site_name: str
    drive_id: str
    item_id: str
    source_kind: str
    content_type: str | None
    last_modified: str | None
    page_start: int | None
    page_end: int | None
    content_tag: str | None
    acl_hash: str
    group_ids: list[str] = field(default_factory=list)
    user_ids: list[str] = field(default_factory=list)
    ancestor_ids: list[str] = field(default_factory=list)  # folder ids from the library root down

    def as_fields(self) -> dict[str, object]:
        """The document as a field-name -> value mapping, as both backends store it (shallow)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class IndexedItem:
    """What the index holds for one item, read back from its documents (the manifest)."""

    ref: ItemRef
    content_tag: str | None
    acl_hash: str
    embedding_model: str
    title: str
    url: str
    path: str
    last_modified: str | None
    chunks: Mapping[str, str]  # chunk key -> content hash
    ancestor_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One result of a search, as `spindex search` shows it."""

    key: str
    parent_key: str
    title: str
    url: str
    path: str
    content: str
    score: float
    source_kind: str
    page_start: int | None = None
    page_end: int | None = None
