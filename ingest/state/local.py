"""Local-file state: one JSON file per library cursor, leases as OS file locks.

A crashed holder's lease vanishes with its process (the kernel drops `flock` locks), so the
next run proceeds. ETags are content digests; a save re-checks them under an exclusive lock,
so two processes never both win a compare-and-swap.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from ingest.state.base import DriveCursor, LeaseHeld, StateConflict, migrate_cursor


def _etag(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


class LocalStateStore:
    """Cursors and leases under one folder (default `.spindex/state`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not key.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"invalid state key {key!r}")
        return self.root / f"{key}.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.root / ".write.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    async def load(self, key: str) -> tuple[DriveCursor, str] | None:
        """The stored cursor and its ETag, or None."""
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        return migrate_cursor(json.loads(data)), _etag(data)

    async def save(self, key: str, cursor: DriveCursor, *, if_match: str | None) -> str:
        """Write the cursor if the stored ETag is still `if_match` (None: must not exist yet)."""
        path = self._path(key)
        data = cursor.model_dump_json(indent=1).encode()
        with self._locked():
            try:
                current: str | None = _etag(path.read_bytes())
            except FileNotFoundError:
                current = None
            if current != if_match:
                raise StateConflict(f"state {key} changed since it was read (expected {if_match}, found {current})")
            tmp = path.with_suffix(".tmp")
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        return _etag(data)

    async def delete(self, key: str) -> None:
        """Forget the cursor."""
        with self._locked():
            self._path(key).unlink(missing_ok=True)

    @contextlib.asynccontextmanager
    async def lease(self, key: str) -> AsyncIterator[None]:
        """Hold `key`'s lease for the block, or raise LeaseHeld at once if another run has it."""
        handle = open(self.root / f"{key}.lease", "a+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LeaseHeld(f"library {key} is being synced by another run") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            handle.close()
