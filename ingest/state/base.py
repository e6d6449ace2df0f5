"""What spindex persists between runs, and the StateStore contract.

State is small and bounded: one cursor record per library (its delta or next link) and the
ids of the few items that failed and must be retried. It never grows with the corpus: what is
indexed per item lives on the index documents (the index is the manifest).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime, timezone
from typing import Any, Protocol

from pydantic import BaseModel, Field

CURSOR_SCHEMA_VERSION = 1
MAX_PENDING_RETRIES = 10_000  # a library with more failed items than this needs a full run anyway
MAX_KNOWN_BAD = 10_000  # beyond this, bad files are simply downloaded and judged again


class KnownBad(BaseModel):
    """A file skipped for its content; it is not downloaded again while its cTag is the same."""

    ctag: str
    reason: str
    message: str


class DriveCursor(BaseModel):
    """Where a library's sync resumes: a delta link (caught up) or a next link (mid-feed)."""

    schema_version: int = CURSOR_SCHEMA_VERSION
    drive_id: str
    link: str | None = Field(None, description="Graph nextLink or deltaLink to resume from.")
    caught_up: bool = Field(False, description="True when `link` is a deltaLink.")
    enumerating: bool = Field(False, description="True while a full enumeration is under way (link is a nextLink).")
    pending_retry: list[str] = Field(default_factory=list, description="Item ids to retry next run.")
    bad_content: dict[str, KnownBad] = Field(
        default_factory=dict, description="Files whose content could not be indexed, by item id, until their cTag changes."
    )
    acls: dict[str, dict[str, list[str]]] = Field(
        default_factory=dict,
        description="acl_hash -> group_ids and user_ids of ACLs the library's index documents carry (ingest/acl_scopes.py).",
    )
    updated_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))


def migrate_cursor(raw: dict[str, Any]) -> DriveCursor:
    """Read a stored cursor of any known schema version into the current model."""
    version = int(raw.get("schema_version", 1))
    if version > CURSOR_SCHEMA_VERSION:
        raise ValueError(f"cursor schema version {version} is newer than this spindex ({CURSOR_SCHEMA_VERSION})")
    return DriveCursor.model_validate(raw)


class StateConflict(Exception):
    """A save whose ETag condition failed: another writer changed the state first."""


class LeaseHeld(Exception):
    """The lease is held by another run."""


class StateStore(Protocol):
    """Cursors with optimistic concurrency, and one lease per library."""

    async def load(self, key: str) -> tuple[DriveCursor, str] | None:
        """The stored cursor and its ETag, or None when the library was never synced."""
        ...

    async def save(self, key: str, cursor: DriveCursor, *, if_match: str | None) -> str:
        """Store the cursor if the stored ETag still equals `if_match` (None: must not exist).

        Returns the new ETag; raises StateConflict otherwise.
        """
        ...

    def lease(self, key: str) -> AbstractAsyncContextManager[None]:
        """Hold the library's lease for the block; raises LeaseHeld if another run holds it."""
        ...

    async def delete(self, key: str) -> None:
        """Forget a library's cursor (the next run enumerates it in full)."""
        ...
