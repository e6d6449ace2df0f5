"""The reader's side: a user's principals become a security filter that is safe to send.

A reader (the chat application, `spindex search`) knows who is asking: the user's Entra object
id and the ids of the groups the user belongs to. `security_filter` turns those into a
`SecurityFilter`; `SecurityFilter.to_odata()` renders the Azure AI Search `$filter` and the local
backend evaluates the same set semantics natively:

    a document matches when one of its `group_ids` is one of the filter's group ids,
    or one of its `user_ids` equals the filter's user id.

A document with no group and no user ids matches nobody; a filter with no user and no groups
matches nothing. Every id is validated before it can reach a filter string: a canonical GUID
(normalised to lowercase) or one of the documented `PRINCIPAL_VALUES`. Nothing else is accepted,
so no quote, comma, space or OData keyword can ever be spliced into the filter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ingest.errors import SpindexError

EVERYONE = "everyone"
"""Granted when SharePoint shares an item with "Everyone": every signed-in account of the tenant,
guests and other external users included. A reader adds it for every signed-in user."""

EVERYONE_EXCEPT_EXTERNAL = "everyone-internal"
"""Granted when SharePoint shares an item with "Everyone except external users": every member
account of the tenant, no guests. A reader adds it only for users who are not guests."""

PRINCIPAL_VALUES: frozenset[str] = frozenset({EVERYONE, EVERYONE_EXCEPT_EXTERNAL})
"""The non-GUID values that may appear in `group_ids`, on documents and in filters."""

# Canonical 8-4-4-4-12 form only; explicit ASCII classes (no IGNORECASE, whose Unicode case
# folding is a door for lookalikes) and fullmatch (so a trailing newline is not tolerated).
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

_PREVIEW_CHARS = 40  # enough to recognise a bad value, never a dump of a huge one

NO_MATCH_ODATA = "false"
"""The filter of a `SecurityFilter` with no user and no groups: the OData boolean literal
`false`, which Azure AI Search accepts as a whole filter and which matches no document."""


class InvalidPrincipal(SpindexError, ValueError):
    """A user or group id that is neither a GUID nor a documented principal value."""

    def __init__(self, value: object, *, role: str) -> None:
        self.role = role
        self.preview = _preview(value)
        super().__init__(f"invalid {role}: {self.preview} (expected a GUID or one of "
                         f"{', '.join(sorted(PRINCIPAL_VALUES))})")


def _preview(value: object) -> str:
    """A short, printable rendering of a rejected value."""
    if not isinstance(value, str):
        return f"<{type(value).__name__}>"
    if len(value) <= _PREVIEW_CHARS:
        return repr(value)
    return f"{value[:_PREVIEW_CHARS]!r}... ({len(value)} chars)"


def _guid(value: object, role: str) -> str:
    """`value` as a lowercase canonical GUID, or `InvalidPrincipal`."""
    if isinstance(value, str) and _GUID.fullmatch(value):
        return value.lower()
    raise InvalidPrincipal(value, role=role)


def _group(value: object) -> str:
    """`value` as a valid group id (GUID or principal value), or `InvalidPrincipal`."""
    if isinstance(value, str) and value in PRINCIPAL_VALUES:
        return value
    return _guid(value, "group id")


@dataclass(frozen=True, slots=True)
class SecurityFilter:
    """Who is reading: one user (optional) and the group ids and principal values they hold.

    Constructing one validates and normalises every id (lowercase GUIDs, principal values kept
    as they are, duplicates removed, groups sorted), so a `SecurityFilter` that exists is always
    safe to render. Equal principals give equal filters and byte-identical OData.
    """

    user_id: str | None
    group_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.user_id is not None:
            # A user id is an Entra object id; principal values are group-like claims only.
            object.__setattr__(self, "user_id", _guid(self.user_id, "user id"))
        if isinstance(self.group_ids, str):
            raise InvalidPrincipal(self.group_ids, role="group ids (a string, not a collection)")
        groups = tuple(sorted({_group(g) for g in self.group_ids}))
        object.__setattr__(self, "group_ids", groups)

    @property
    def matches_nothing(self) -> bool:
        """True when no document can pass this filter (no user, no groups)."""
        return self.user_id is None and not self.group_ids

    def permits(self, group_ids: Iterable[str], user_ids: Iterable[str]) -> bool:
        """Whether a document with these security fields passes (the reference semantics)."""
        mine = set(self.group_ids)
        if any(g in mine for g in group_ids):
            return True
        return self.user_id is not None and any(u == self.user_id for u in user_ids)

    def to_odata(self) -> str:
        """The `$filter` for Azure AI Search.

        Form, exactly: `group_ids/any(g: search.in(g, 'id1,id2', ','))` for the groups (one
        `search.in` clause however many ids, which keeps thousands of groups under the filter
        complexity limit), `user_ids/any(u: u eq 'oid')` for the user, joined by ` or ` when
        both are present, and `false` (matches nothing) when neither is.
        """
        clauses: list[str] = []
        if self.group_ids:
            # Safe to splice: every value passed validation and holds no quote or comma.
            clauses.append(f"group_ids/any(g: search.in(g, '{','.join(self.group_ids)}', ','))")
        if self.user_id is not None:
            clauses.append(f"user_ids/any(u: u eq '{self.user_id}')")
        return " or ".join(clauses) if clauses else NO_MATCH_ODATA


def security_filter(
    user_id: str | None,
    group_ids: Iterable[str],
    *,
    principal_values: Iterable[str] = (),
) -> SecurityFilter:
    """The filter for a user with these group memberships and principal values.

    `principal_values` are the claims the reader grants this user on top of its groups (for
    example `EVERYONE` and, for a member rather than a guest, `EVERYONE_EXCEPT_EXTERNAL`); each
    must be in `PRINCIPAL_VALUES`. Raises `InvalidPrincipal`, naming the first bad value, when
    any id is not valid; nothing is silently dropped.
    """
    if isinstance(group_ids, str) or isinstance(principal_values, str):
        # A bare string would be iterated character by character.
        raise InvalidPrincipal(group_ids if isinstance(group_ids, str) else principal_values,
                               role="group ids (a string, not a collection)")
    extra: list[str] = []
    for value in principal_values:
        if not (isinstance(value, str) and value in PRINCIPAL_VALUES):
            raise InvalidPrincipal(value, role="principal value")
        extra.append(value)
    return SecurityFilter(user_id=user_id, group_ids=(*group_ids, *extra))
