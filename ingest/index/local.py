"""The embedded index backend: a directory of SQLite indexes and their aliases.

Layout under the catalog root:

    <name>.sqlite     one physical index (WAL mode); see `local_store.py`
    aliases.json      {"version": 1, "aliases": {"<alias>": "<index>"}}, replaced atomically

Aliases and index names share one namespace, as in Azure AI Search where a query URL names
either: an alias cannot be called like an index, nor an index like an alias.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
import threading
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path

from ingest.errors import IndexUnavailable
from ingest.index.base import IndexAlreadyExists, IndexContractError, IndexInUse, IndexNotFound
from ingest.index.local_store import LocalIndexStore
from ingest.index.schema import load_index_definition, validate_index_name

__all__ = ["ALIASES_FILE", "SQLITE_SUFFIX", "LocalIndexCatalog", "LocalIndexStore"]

SQLITE_SUFFIX = ".sqlite"
ALIASES_FILE = "aliases.json"

try:
    import fcntl as _fcntl
except ImportError:  # Windows: the in-process lock alone serialises catalog changes
    _fcntl = None  # type: ignore[assignment]


class LocalIndexCatalog:
    """The physical indexes under one directory and their aliases; see `IndexCatalog`."""

    def __init__(self, root: Path) -> None:
        """Use (and create if needed) the directory `root`."""
        self.root = Path(root)
        self._lock = threading.Lock()
        self._open: dict[str, weakref.WeakSet[LocalIndexStore]] = {}
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IndexUnavailable(f"index directory {self.root} is not usable: {exc}") from exc

    def _path(self, name: str) -> Path:
        return self.root / f"{validate_index_name(name)}{SQLITE_SUFFIX}"

    def _track(self, store: LocalIndexStore) -> LocalIndexStore:
        self._open.setdefault(store.name, weakref.WeakSet()).add(store)
        return store

    async def create_index(self, name: str, dimensions: int) -> LocalIndexStore:
        """Create an empty index; `IndexAlreadyExists` if the name is an index or an alias."""
        path = self._path(name)
        definition = load_index_definition(name, dimensions)
        with self._catalog_lock():
            if name in self._read_aliases():
                raise IndexAlreadyExists(f"{name!r} is already the name of an alias")
            if path.exists():
                raise IndexAlreadyExists(f"index {name!r} already exists")
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{name}.", suffix=".tmp")
            os.close(fd)
            try:
                # Built aside and renamed in, so a crash never leaves a half-made index behind.
                LocalIndexStore.initialise(Path(tmp), definition)
                os.replace(tmp, path)
            except (sqlite3.Error, OSError) as exc:
                raise IndexUnavailable(f"index {name!r} could not be created: {exc}") from exc
            finally:
                for leftover in (tmp, tmp + "-wal", tmp + "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(leftover)
        return self._track(LocalIndexStore(path, name))

    async def open_index(self, name: str) -> LocalIndexStore:
        """Open an existing physical index (not an alias); `IndexNotFound` if missing."""
        return self._track(LocalIndexStore(self._path(name), name))

    async def list_indexes(self) -> list[str]:
        """The physical index names, sorted."""
        names = []
        for path in self.root.glob(f"*{SQLITE_SUFFIX}"):
            try:
                names.append(validate_index_name(path.name[:-len(SQLITE_SUFFIX)]))
            except IndexContractError:
                continue  # not ours
        return sorted(names)

    async def delete_index(self, name: str) -> None:
        """Delete an index that no alias points at.

        Stores opened on it through this catalog become closed; a store held by another
        process keeps reading its (now unlinked) file until it closes.
        """
        path = self._path(name)
        with self._catalog_lock():
            targets = self._read_aliases()
            users = sorted(a for a, target in targets.items() if target == name)
            if users:
                raise IndexInUse(f"index {name!r} is the target of alias(es) {', '.join(users)}")
            if not path.is_file():
                raise IndexNotFound(f"index {name!r} does not exist")
            for store in list(self._open.pop(name, ())):
                await store.close()
            try:
                for suffix in ("", "-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(f"{path}{suffix}")
            except OSError as exc:
                raise IndexUnavailable(f"index {name!r} could not be deleted: {exc}") from exc

    async def get_alias(self, alias: str) -> str | None:
        """The index `alias` points at, or None."""
        validate_index_name(alias, kind="alias")
        return self._read_aliases().get(alias)

    async def set_alias(self, alias: str, index: str) -> None:
        """Point `alias` at existing index `index`, replacing the file atomically."""
        validate_index_name(alias, kind="alias")
        path = self._path(index)
        with self._catalog_lock():
            if self._path(alias).exists():
                raise IndexInUse(f"{alias!r} is the name of a physical index, not an alias")
            if not path.is_file():
                raise IndexNotFound(f"index {index!r} does not exist")
            aliases = self._read_aliases()
            aliases[alias] = index
            self._write_aliases(aliases)

    async def aliases(self) -> dict[str, str]:
        """Every alias and the index it points at (not part of the protocol; for the CLI)."""
        return self._read_aliases()

    # -- the aliases file -----------------------------------------------------------------

    @contextlib.contextmanager
    def _catalog_lock(self) -> Iterator[None]:
        """Serialise changes to the set of indexes and aliases, across threads and processes."""
        with self._lock, open(self.root / ".catalog.lock", "a+b") as handle:
            if _fcntl is None:
                yield
                return
            _fcntl.flock(handle, _fcntl.LOCK_EX)
            try:
                yield
            finally:
                _fcntl.flock(handle, _fcntl.LOCK_UN)

    def _read_aliases(self) -> dict[str, str]:
        path = self.root / ALIASES_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise IndexUnavailable(f"alias file {path} is unreadable: {exc}") from exc
        if not isinstance(data, dict) or data.get("version") != 1 or \
                not isinstance(data.get("aliases"), dict):
            raise IndexUnavailable(f"alias file {path} has an unknown format")
        return {str(k): str(v) for k, v in data["aliases"].items()}

    def _write_aliases(self, aliases: Mapping[str, str]) -> None:
        path = self.root / ALIASES_FILE
        payload = json.dumps({"version": 1, "aliases": dict(sorted(aliases.items()))}, indent=2)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{ALIASES_FILE}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(payload + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)  # readers see the old file or the new one, never half of one
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise IndexUnavailable(f"alias file {path} could not be written: {exc}") from exc
