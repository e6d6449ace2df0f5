"""Permissions read once per permission scope, not once per item.

In SharePoint an item either has unique permissions or inherits those of its parent folder,
up to the library root (which may itself inherit from the site). Delta is asked for
`Prefer: hierarchicalsharing`, under which Graph puts a `shared` facet on every item that
starts a permission hierarchy (an empty facet: unique permissions without sharing links) and
on items whose sharing changed (platform-facts §1, "Scanning permissions hierarchies"). So:

- an item listed with a `shared` facet, or whose inheritance is unknown (fetched by id, not
  from such a delta page), has its own permissions read;
- an item listed without one has the readers of its nearest ancestor folder that is not known
  to inherit, or of the library root: one permission read for a whole folder of files.

Each scope is read at most once per library and run, however many items ask for it at once; a
failed read fails every item that depends on it (fail closed: they are locked, not guessed).

A delta run also keeps an item's readers when Graph reports no sharing change for it
(`sharedChanged` absent) and its index documents carry a known ACL: `AclTable` maps the
`acl_hash` on index documents back to the ACL, since the index does not return `group_ids`
and `user_ids`. The table lives in the library's cursor; an entry is checked against its hash
when read, and a miss costs a permission read, never a guess.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from ingest.acl import AclResult
from ingest.models import Acl, DriveRef, SourceItem

ROOT = "root"  # Graph's alias for a library's root folder
MAX_ACL_TABLE = 2_000  # distinct ACLs kept per library cursor; the least recently used go first

ReadScope = Callable[[DriveRef, str], Awaitable[AclResult]]
InheritsFn = Callable[[DriveRef, str], Any]  # True: inherits; False: unique; None: unknown


class AclScopes:
    """The readers of items, each permission scope read once per library and run."""

    def __init__(self, read: ReadScope, inherits: InheritsFn) -> None:
        self._read = read
        self._inherits = inherits
        self._scopes: dict[tuple[str, str], asyncio.Future[AclResult]] = {}

    def clear(self, drive_id: str) -> None:
        """Forget the scopes of one library read so far (bounds memory)."""
        for key in [key for key in self._scopes if key[0] == drive_id]:
            del self._scopes[key]

    def scope_of(self, item: SourceItem) -> str:
        """The id of the item whose permissions are the item's readers."""
        if item.inherits is not True:
            return item.ref.item_id
        for folder_id in reversed(item.ancestor_ids):
            if self._inherits(item.drive, folder_id) is not True:
                return folder_id
        return ROOT

    async def result_for(self, item: SourceItem) -> AclResult:
        """The item's readers, from its own permissions or from those of its scope."""
        scope = self.scope_of(item)
        if scope == item.ref.item_id:
            return await self._read(item.drive, scope)  # unique: nobody else will ask for it
        key = (item.drive.drive_id, scope)
        future = self._scopes.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._scopes[key] = future
            try:
                future.set_result(await self._read(item.drive, scope))
            except asyncio.CancelledError:
                del self._scopes[key]  # not an answer about the scope: let the next one ask
                future.cancel()
                raise
            except Exception as exc:
                future.set_exception(exc)
                future.exception()  # retrieved: items waiting on it, if any, get it too
                raise
        return await asyncio.shield(future)


class AclTable:
    """acl_hash -> Acl for one library, so that a delta can keep an unchanged item's readers."""

    def __init__(self, entries: Mapping[str, Any] | None = None) -> None:
        self._acls: dict[str, Acl] = {}
        for digest, entry in (entries or {}).items():
            try:
                acl = Acl(frozenset(entry["group_ids"]), frozenset(entry["user_ids"]))
            except (KeyError, TypeError):
                continue
            if acl.acl_hash == digest:  # a damaged or foreign entry is dropped, never trusted
                self._acls[digest] = acl

    def get(self, digest: str) -> Acl | None:
        """The ACL whose hash is `digest`, if this library has used it lately."""
        acl = self._acls.pop(digest, None)
        if acl is not None:
            self._acls[digest] = acl  # most recently used last
        return acl

    def add(self, acls: Iterable[Acl]) -> None:
        """Remember ACLs written to the index."""
        for acl in acls:
            self._acls.pop(acl.acl_hash, None)
            self._acls[acl.acl_hash] = acl
        while len(self._acls) > MAX_ACL_TABLE:
            del self._acls[next(iter(self._acls))]

    def entries(self) -> dict[str, dict[str, list[str]]]:
        """The table as the cursor stores it."""
        return {
            digest: {"group_ids": sorted(acl.group_ids), "user_ids": sorted(acl.user_ids)}
            for digest, acl in self._acls.items()
        }

    def __len__(self) -> int:
        return len(self._acls)
