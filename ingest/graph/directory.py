"""Directory reads of the Graph client: users, their transitive groups, group owners.

A mixin of `GraphClient`, kept apart to keep each module short. Ids are read as plain JSON,
not through the SDK's models: parsing its first user object imports about a hundred modules
(half a second, on the way to a run's first document), for the one field spindex needs.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ingest.concurrency import in_order
from ingest.errors import AuthError, SourceUnavailable

if TYPE_CHECKING:
    from ingest.graph.client import GraphClient

GRAPH_BATCH_MAX = 20  # requests per JSON batch (Graph json-batching.md)


class DirectoryReads:
    """User ids (one at a time or by `$batch`), transitive groups and group owners."""

    async def user(self: GraphClient, user: str) -> Any:
        """A user by object id or user principal name."""
        return await self._call("user", self.sdk.users.by_user_id(user).get, item=user)

    async def user_id(self: GraphClient, user: str) -> str:
        """A user's object id, by object id or user principal name."""
        url = f"{self.settings.base_url}/users/{quote(user, safe='@')}?$select=id"
        body = await self._call("user", lambda: self._json("GET", url), item=user)
        if not body.get("id"):
            raise SourceUnavailable(f"Graph answered a lookup of user {user} without an id")
        return str(body["id"])

    async def transitive_group_ids(self: GraphClient, user_id: str) -> list[str]:
        """Ids of every group the user belongs to, directly or through nesting (all pages)."""
        return await self._ids(f"/users/{quote(user_id, safe='@')}/transitiveMemberOf/microsoft.graph.group", item=user_id)

    async def group_owner_ids(self: GraphClient, group_id: str) -> list[str]:
        """Object ids of a group's owners (all pages)."""
        return await self._ids(f"/groups/{quote(group_id, safe='')}/owners", item=group_id)

    async def _ids(self: GraphClient, path: str, *, item: str) -> list[str]:
        """The `id` of every object a directory listing returns, all pages, read as plain JSON.

        Not through the SDK's models: parsing its first user object imports about a hundred
        modules (half a second, on the way to a run's first document), for one field we need.
        """
        url: str | None = f"{self.settings.base_url}{path}?$select=id"
        ids: list[str] = []
        while url:
            page = await self._call("user", functools.partial(self._json, "GET", url), item=item, cost="user_list")
            ids.extend(str(entry["id"]) for entry in page.get("value") or [] if entry.get("id"))
            url = page.get("@odata.nextLink")
        return ids

    async def batch_user_ids(self: GraphClient, upns: Sequence[str]) -> dict[str, str | None]:
        """Object ids of users by UPN through `$batch`; None for a UPN the directory does not know."""
        ids: dict[str, str | None] = {}
        parts = [list(upns[i : i + GRAPH_BATCH_MAX]) for i in range(0, len(upns), GRAPH_BATCH_MAX)]

        async def one(part: list[str]) -> None:
            urls = {str(n): f"/users/{quote(upn, safe='@')}?$select=id" for n, upn in enumerate(part)}
            answers = await self._batch(urls, kind="user")
            for n, upn in enumerate(part):
                status, body = answers[str(n)]
                if status == 200 and body.get("id"):
                    ids[upn] = str(body["id"])
                elif status == 404:
                    ids[upn] = None
                elif status in (401, 403):
                    raise AuthError(f"Graph denied reading users (HTTP {status}); grant the app User.Read.All")
                else:
                    raise SourceUnavailable(f"Graph failed on a user lookup (HTTP {status} in $batch)")

        await in_order([one(part) for part in parts], limit=4)  # a few batches in flight, not hundreds
        return ids
