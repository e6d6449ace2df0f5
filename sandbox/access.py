"""Who is who, and who a grant reaches: the directory half of the permission oracle.

The oracle's rules, which tests and the demo treat as the truth about SharePoint:

- Any role (read, write, owner) lets a principal read.
- A group grant reaches every user that is a member of the group, transitively through nested
  groups. Owners of an Entra group are not members by virtue of owning it.
- A site-group grant reaches whoever one of the site group's member claims reaches:
  `i:0#.f|membership|<upn>` that user; `c:0t.c|tenant|<id>` and
  `c:0o.c|federateddirectoryclaimprovider|<id>` the group's transitive members;
  `c:0o.c|federateddirectoryclaimprovider|<id>_o` the group's OWNERS only;
  `c:0-.f|rolemanager|spo-grid-all-users/<guid>` every user except guests (whatever the guid);
  `c:0(.s|true` every user, guests included.
- A sharing link with scope `users` reaches its recipients. Links with scope `organization` or
  `anonymous` grant nobody: whoever holds such a link can open the item, but the item is not
  "readable" by anyone in the search sense, so an index must not expose it on that basis.
"""

from __future__ import annotations

from collections.abc import Iterable

from sandbox.model import (
    EVERYONE_CLAIM,
    EVERYONE_EXCEPT_GUESTS_CLAIM,
    M365_GROUP_CLAIM,
    M365_OWNERS_SUFFIX,
    SECURITY_GROUP_CLAIM,
    USER_CLAIM,
    Grant,
    Group,
    Site,
    User,
)


class Directory:
    """The tenant's users and Entra groups, with membership queries that follow nesting."""

    def __init__(self, users: Iterable[User], groups: Iterable[Group]) -> None:
        self.users: dict[str, User] = {u.id: u for u in users}
        self.groups: dict[str, Group] = {g.id: g for g in groups}

    def user(self, upn_or_id: str) -> User:
        """The user with this id or UPN (case-insensitive); KeyError when there is none."""
        if upn_or_id in self.users:
            return self.users[upn_or_id]
        wanted = upn_or_id.lower()
        for user in self.users.values():
            if user.upn.lower() == wanted or user.id.lower() == wanted:
                return user
        raise KeyError(upn_or_id)

    def group(self, name_or_id: str) -> Group:
        """The group with this id or display name (case-insensitive); KeyError when there is none."""
        if name_or_id in self.groups:
            return self.groups[name_or_id]
        wanted = name_or_id.lower()
        for group in self.groups.values():
            if group.id.lower() == wanted or group.display_name.lower() == wanted:
                return group
        raise KeyError(name_or_id)

    def transitive_group_ids(self, user_id: str) -> set[str]:
        """Ids of every group the user is a member of, directly or through nested groups."""
        found: set[str] = set()
        frontier = [g.id for g in self.groups.values() if user_id in g.member_user_ids]
        while frontier:
            group_id = frontier.pop()
            if group_id in found:
                continue
            found.add(group_id)
            frontier += [g.id for g in self.groups.values() if group_id in g.member_group_ids]
        return found

    def transitive_member_ids(self, group_id: str) -> tuple[set[str], set[str]]:
        """(user ids, nested group ids) reachable from a group's members; cycles are tolerated."""
        users: set[str] = set()
        groups: set[str] = set()
        frontier = [group_id]
        while frontier:
            current = self.groups.get(frontier.pop())
            if current is None:
                continue
            users.update(current.member_user_ids)
            for nested in current.member_group_ids:
                if nested not in groups and nested != group_id:
                    groups.add(nested)
                    frontier.append(nested)
        return users, groups

    def is_member(self, user_id: str, group_id: str) -> bool:
        """True when the user is in the group, directly or transitively."""
        return group_id in self.transitive_group_ids(user_id)

    def claim_reaches(self, claim: str, user: User) -> bool:
        """True when a SharePoint login claim covers the user (rules in the module docstring)."""
        lowered = claim.lower()
        if lowered == EVERYONE_CLAIM:
            return True
        if lowered.startswith(EVERYONE_EXCEPT_GUESTS_CLAIM):
            return not user.is_guest
        if lowered.startswith(USER_CLAIM):
            return lowered[len(USER_CLAIM) :] == user.upn.lower()
        if lowered.startswith(M365_GROUP_CLAIM):
            rest = lowered[len(M365_GROUP_CLAIM) :]
            if rest.endswith(M365_OWNERS_SUFFIX):
                group = self._group_by_id(rest[: -len(M365_OWNERS_SUFFIX)])
                return group is not None and user.id in group.owner_ids
            group = self._group_by_id(rest)
            return group is not None and self.is_member(user.id, group.id)
        if lowered.startswith(SECURITY_GROUP_CLAIM):
            group = self._group_by_id(lowered[len(SECURITY_GROUP_CLAIM) :])
            return group is not None and self.is_member(user.id, group.id)
        return False

    def grant_reaches(self, grant: Grant, user: User, site: Site) -> bool:
        """True when one permission entry lets the user read (rules in the module docstring)."""
        if grant.user_id is not None:
            return grant.user_id == user.id
        if grant.group_id is not None:
            return self.is_member(user.id, grant.group_id)
        if grant.site_group_id is not None:
            site_group = site.site_group(grant.site_group_id)
            return site_group is not None and any(
                self.claim_reaches(claim, user) for claim in site_group.member_claims
            )
        if grant.link is not None and grant.link.scope == "users":
            return user.id in grant.link.recipient_ids
        return False

    def _group_by_id(self, group_id: str) -> Group | None:
        wanted = group_id.lower()
        return next((g for g in self.groups.values() if g.id.lower() == wanted), None)
