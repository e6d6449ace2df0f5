"""Graph permissions -> `Acl(group_ids, user_ids)`.

What each permission form becomes (the documented policy):

- a grant to an Entra user (`grantedToV2.user`) -> that user's object id in `user_ids`;
- a grant to an Entra security or Microsoft 365 group (`grantedToV2.group`) -> its object id in
  `group_ids`; the reader's side expands a user's nested memberships, so ingestion stores
  direct grants only;
- a specific-people sharing link (`link.scope == "users"`) -> each recipient in
  `grantedToIdentitiesV2` as above;
- organization-wide links widen nothing unless `acl.widen_organization_links` is set, which
  maps them to the principal value for "everyone except external users"; anonymous links
  never widen the ACL (the index is for signed-in readers);
- a SharePoint site group (`grantedToV2.siteGroup`) is resolved by `SiteGroupResolver` through
  SharePoint REST to its members' login claims, and a site user (`siteUser`) by its claim:
  users -> object ids, security and Microsoft 365 groups -> group ids, a Microsoft 365 group's
  `_o` owners claim -> its owners' user ids, "Everyone except external users" and "Everyone"
  -> the principal values of `ingest/query.py` (unless `acl.everyone_claims` is off). A claim
  that cannot be mapped makes the group unreadable, and an unreadable group makes the item
  unsearchable (fail closed). Without a resolver the grant is recorded as unresolved.

Every role (`read`, `write`, `owner`, ...) grants read access.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from ingest.concurrency import in_order
from ingest.config import AclSettings
from ingest.errors import ItemError
from ingest.graph.client import GraphClient
from ingest.graph.sharepoint_rest import SharePointRest, SiteGroupUnreadable
from ingest.models import Acl, SiteRef
from ingest.query import EVERYONE, EVERYONE_EXCEPT_EXTERNAL

T = TypeVar("T")


class SiteGroupResolver(Protocol):
    """Resolves a SharePoint site group to the Entra users and groups it holds."""

    async def resolve(self, site: SiteRef, group_id: str) -> Acl:
        """The members of site group `group_id` of `site` as an Acl; raises when unreadable."""
        ...

    async def resolve_login(self, login: str) -> Acl:
        """What one login claim (a SharePoint site user) stands for; raises when unmappable."""
        ...


@dataclass(slots=True)
class AclResult:
    """An item's Acl and the grants that could not be turned into ids (for the run report)."""

    acl: Acl
    unresolved: list[str] = field(default_factory=list)


def _identity_ids(identity_set: Any, users: set[str], groups: set[str]) -> list[str]:
    """Add the user or group of one identity set; return what it held that is not a user/group."""
    if identity_set is None:
        return []
    user = getattr(identity_set, "user", None)
    group = getattr(identity_set, "group", None)
    if user is not None and user.id:
        users.add(user.id.lower())
        return []
    if group is not None and group.id:
        groups.add(group.id.lower())
        return []
    site_group = getattr(identity_set, "site_group", None)
    if site_group is not None and site_group.id:
        return [f"siteGroup:{site_group.id}"]
    site_user = getattr(identity_set, "site_user", None)
    if site_user is not None:
        return [f"siteUser:{site_user.login_name or site_user.id}"]
    return []


async def permissions_to_acl(
    permissions: Sequence[Any],
    *,
    site: SiteRef,
    policy: AclSettings,
    site_groups: SiteGroupResolver | None = None,
) -> AclResult:
    """Flatten an item's effective permissions (msgraph `Permission` objects) into an Acl."""
    users: set[str] = set()
    groups: set[str] = set()
    unresolved: list[str] = []
    resolving: list[Awaitable[Acl]] = []
    for permission in permissions:
        link = getattr(permission, "link", None)
        if link is not None:
            scope = (link.scope or "").lower()
            if scope == "users" or scope == "existingaccess":
                for identity in getattr(permission, "granted_to_identities_v2", None) or []:
                    unresolved.extend(_identity_ids(identity, users, groups))
            elif scope == "organization" and policy.widen_organization_links:
                groups.add(EVERYONE_EXCEPT_EXTERNAL)
            continue
        granted = getattr(permission, "granted_to_v2", None) or getattr(permission, "granted_to", None)
        for key in _identity_ids(granted, users, groups):
            kind, _, value = key.partition(":")
            if site_groups is not None and kind in ("siteGroup", "siteUser"):
                resolving.append(site_groups.resolve(site, value) if kind == "siteGroup" else site_groups.resolve_login(value))
            else:
                unresolved.append(key)
        for identity in getattr(permission, "granted_to_identities_v2", None) or []:
            unresolved.extend(_identity_ids(identity, users, groups))
    for members in await in_order(resolving):  # at once: each is several round trips
        users.update(members.user_ids)
        groups.update(members.group_ids)
    return AclResult(Acl(frozenset(groups), frozenset(users)), unresolved)


CLAIM_USER = "i:0#.f|membership|"
CLAIM_SECURITY_GROUP = "c:0t.c|tenant|"
CLAIM_M365_GROUP = "c:0o.c|federateddirectoryclaimprovider|"
CLAIM_EVERYONE_EXCEPT_EXTERNAL = "c:0-.f|rolemanager|spo-grid-all-users/"
CLAIM_EVERYONE = "c:0(.s|true"


class ClaimsSiteGroupResolver:
    """Resolves site groups through SharePoint REST, mapping each member's login claim to ids.

    `c:0o.c|federateddirectoryclaimprovider|<id>` is a Microsoft 365 group's members (the group
    id); the same claim with `_o` is that group's owners, resolved to the owners' user ids and
    never to the group. Members whose claim cannot be mapped make the whole site group
    unreadable, so what it grants is not searchable (fail closed).
    """

    def __init__(self, rest: SharePointRest, graph: GraphClient, policy: AclSettings) -> None:
        self.rest = rest
        self.graph = graph
        self.policy = policy
        # Futures, not values: concurrent items asking for the same group share one request.
        self._groups: dict[tuple[str, str], asyncio.Future[Acl]] = {}
        self._users: dict[str, asyncio.Future[str]] = {}
        self._owners: dict[str, asyncio.Future[list[str]]] = {}

    async def resolve(self, site: SiteRef, group_id: str) -> Acl:
        """The Entra ids a site group stands for, read once per run."""
        return await _once(self._groups, (site.site_id, group_id), lambda: self._read_group(site, group_id))

    async def resolve_login(self, login: str) -> Acl:
        """What one login claim stands for (a siteUser grant)."""
        users: set[str] = set()
        groups: set[str] = set()
        await self._claim(login, users, groups, "siteUser")
        return Acl(frozenset(groups), frozenset(users))

    async def _read_group(self, site: SiteRef, group_id: str) -> Acl:
        members = await self.rest.site_group_users(site.web_url, group_id)
        logins = [str(member.get("LoginName") or "") for member in members]
        upns = [login[len(CLAIM_USER):] for login in logins if login.lower().startswith(CLAIM_USER)]
        await self._prefetch_users(upns, group_id)
        users: set[str] = set()
        groups: set[str] = set()
        await in_order([self._claim(login, users, groups, group_id) for login in logins])
        return Acl(frozenset(groups), frozenset(users))

    async def _prefetch_users(self, upns: Sequence[str], site_group: str) -> None:
        """Look up many members' object ids in `$batch` requests instead of one call each."""
        missing = sorted({u for u in upns if u not in self._users})
        if len(missing) < 2:
            return
        found = await self.graph.batch_user_ids(missing)
        for upn in missing:
            future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            user_id = found.get(upn)
            if user_id is None:
                future.set_exception(SiteGroupUnreadable(f"site group {site_group}: member {upn} not found in the directory"))
                future.exception()  # retrieved here, so an unused failure is not logged as lost
            else:
                future.set_result(user_id.lower())
            self._users.setdefault(upn, future)

    async def _user_id(self, upn: str, site_group: str) -> str:
        async def lookup() -> str:
            try:
                return (await self.graph.user_id(upn)).lower()
            except ItemError:
                raise SiteGroupUnreadable(f"site group {site_group}: member {upn} not found in the directory") from None

        return await _once(self._users, upn, lookup)

    async def _owner_ids(self, group: str) -> list[str]:
        async def lookup() -> list[str]:
            return [o.lower() for o in await self.graph.group_owner_ids(group)]

        return await _once(self._owners, group, lookup)

    async def _claim(self, login: str, users: set[str], groups: set[str], site_group: str) -> None:
        lowered = login.lower()
        if lowered.startswith(CLAIM_USER):
            users.add(await self._user_id(login[len(CLAIM_USER):], site_group))
        elif lowered.startswith(CLAIM_SECURITY_GROUP):
            groups.add(login[len(CLAIM_SECURITY_GROUP):].lower())
        elif lowered.startswith(CLAIM_M365_GROUP):
            group = login[len(CLAIM_M365_GROUP):].lower()
            if group.endswith("_o"):
                users.update(await self._owner_ids(group[:-2]))
            else:
                groups.add(group)
        elif lowered.startswith(CLAIM_EVERYONE_EXCEPT_EXTERNAL):
            if self.policy.everyone_claims:
                groups.add(EVERYONE_EXCEPT_EXTERNAL)
        elif lowered == CLAIM_EVERYONE:
            if self.policy.everyone_claims:
                groups.add(EVERYONE)
        elif lowered.startswith("c:0t.c|tenant|") or lowered.startswith("c:0-.f|"):
            raise SiteGroupUnreadable(f"site group {site_group}: unknown claim form {login[:60]!r}")
        else:
            raise SiteGroupUnreadable(f"site group {site_group}: unmapped member {login[:60]!r}")


async def _once(cache: dict[Any, asyncio.Future[T]], key: Any, compute: Callable[[], Awaitable[T]]) -> T:
    """`compute()` once per key for the run; concurrent callers await the same result or error."""
    future = cache.get(key)
    if future is None:
        future = asyncio.ensure_future(compute())
        cache[key] = future
    return await asyncio.shield(future)


def union(acls: Iterable[Acl]) -> Acl:
    """The Acl that admits whoever any of `acls` admits."""
    groups: set[str] = set()
    users: set[str] = set()
    for acl in acls:
        groups |= acl.group_ids
        users |= acl.user_ids
    return Acl(frozenset(groups), frozenset(users))
