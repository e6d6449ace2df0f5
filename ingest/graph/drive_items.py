"""Drive items as spindex reads them: the fields of a delta page or an item GET, from plain JSON.

Not through msgraph-sdk's `DriveItem` model: parsing one costs about a millisecond of CPU (its
backing store records every field it sets), against some 15 µs for the JSON itself, and delta
lists every item of a library, changed or not. `DriveEntry` keeps what the SDK model gave for
the fields below: a facet (`file`, `folder`, `root`, `deleted`, `shared`) counts when it is
present and not null, and the annotations come from the item's top level.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

DOWNLOAD_URL_FIELD = "@microsoft.graph.downloadUrl"
SHARED_CHANGED_FIELD = "@microsoft.graph.sharedChanged"
# What delta is asked for ($select): the fields `drive_entry` reads.
DELTA_SELECT = [
    "id", "name", "eTag", "cTag", "size", "webUrl", "lastModifiedDateTime", "parentReference",
    "file", "folder", "root", "deleted", "sharepointIds", "shared", DOWNLOAD_URL_FIELD,
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class DriveEntry:
    """One driveItem: its identity, place, version tags and facets."""

    id: str
    name: str | None = None
    parent_id: str | None = None
    web_url: str | None = None
    size: int | None = None
    ctag: str | None = None
    etag: str | None = None
    last_modified: datetime | None = None
    is_file: bool = False
    mime_type: str | None = None  # the file facet's
    is_folder: bool = False
    is_root: bool = False
    deleted: bool = False
    shared: bool = False  # a `shared` facet: under hierarchicalsharing, where permissions start
    shared_changed: bool = False  # delta's annotation: the item's own sharing changed
    download_url: str | None = None
    list_item_unique_id: str | None = None  # sharepointIds: a site page's list item


def drive_entry(body: Mapping[str, Any]) -> DriveEntry:
    """The `DriveEntry` of one driveItem JSON object (a delta page's entry or an item GET)."""
    file = _facet(body, "file")
    parent = _facet(body, "parentReference")
    ids = _facet(body, "sharepointIds")
    size = body.get("size")
    return DriveEntry(
        id=_text(body.get("id")) or "",
        name=_text(body.get("name")),
        parent_id=_text(parent.get("id")) if parent is not None else None,
        web_url=_text(body.get("webUrl")),
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        ctag=_text(body.get("cTag")),
        etag=_text(body.get("eTag")),
        last_modified=_datetime(body.get("lastModifiedDateTime")),
        is_file=file is not None,
        mime_type=_text(file.get("mimeType")) if file is not None else None,
        is_folder=_facet(body, "folder") is not None,
        is_root=_facet(body, "root") is not None,
        deleted=_facet(body, "deleted") is not None,
        shared=_facet(body, "shared") is not None,
        shared_changed=str(body.get(SHARED_CHANGED_FIELD, "")).lower() == "true",
        download_url=_text(body.get(DOWNLOAD_URL_FIELD)),
        list_item_unique_id=_text(ids.get("listItemUniqueId")) if ids is not None else None,
    )


def _facet(body: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    """A facet (an object-valued property) when present and not null."""
    value = body.get(name)
    return value if isinstance(value, Mapping) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _datetime(value: object) -> datetime | None:
    """An ISO 8601 timestamp as Graph writes it ("2024-05-01T09:30:00Z", fractions allowed)."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
