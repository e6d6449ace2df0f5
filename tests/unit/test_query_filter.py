"""The reader's security filter can only ever say "these GUIDs, this user": nothing else.

Invariants defended:
- Every id is a canonical GUID (normalised to lowercase) or a documented principal value;
  anything else (quotes, commas, spaces, OData keywords, parentheses, `*`, empty strings,
  Unicode lookalikes, huge strings, non-strings) raises `InvalidPrincipal`, whose message names
  the value in truncated form and never dumps it whole.
- The OData has exactly the documented form: one `search.in` clause for all groups, one `eq`
  for the user, joined by ` or `; `false` when there is no user and no group (matches nothing).
- For any list of valid GUIDs the filter round-trips: the ids parsed back out of the OData are
  the same set, and the only quotes in it are the delimiting ones.
- Equal principals give byte-identical filters (deduplicated, sorted), whatever the input order.
"""

from __future__ import annotations

import re
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.query import (
    EVERYONE,
    EVERYONE_EXCEPT_EXTERNAL,
    NO_MATCH_ODATA,
    PRINCIPAL_VALUES,
    InvalidPrincipal,
    SecurityFilter,
    security_filter,
)

G1 = "11111111-1111-1111-1111-111111111111"
G2 = "22222222-2222-2222-2222-222222222222"
USER = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"

HOSTILE = [
    "",
    " ",
    "'",
    "''",
    f"{G1}'",
    f"{G1}' or true or '",
    f"{G1},{G2}",
    f"{G1} ",
    f" {G1}",
    f"{G1}\n",
    f"{G1} or {G2}",
    "x' eq 'x",
    "or",
    "eq",
    "any",
    "search.in",
    "true",
    "(",
    ")",
    "*",
    "null",
    "00000000-0000-0000-0000-00000000000g",
    "0000000-00000-0000-0000-000000000000",
    "00000000000000000000000000000000",
    "{00000000-0000-0000-0000-000000000000}",
    "urn:uuid:00000000-0000-0000-0000-000000000000",
    "\uff11" * 8 + "-1111-1111-1111-111111111111",  # fullwidth digits
    "１１１１１１１１-1111-1111-1111-111111111111",
    "11111111\u20101111-1111-1111-111111111111",  # Unicode hyphen
    "11111111-1111-1111-1111-11111111111\u0661",  # Arabic-Indic digit one
    "Everyone",
    "EVERYONE",
    "everyone ",
    "all",
    "a" * 100_000,
    G1 * 3,
    "\x00",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_group_ids_are_refused(value: str) -> None:
    with pytest.raises(InvalidPrincipal):
        security_filter(None, [G1, value])


@pytest.mark.parametrize("value", [*HOSTILE, EVERYONE])
def test_hostile_user_ids_are_refused(value: str) -> None:
    with pytest.raises(InvalidPrincipal):
        security_filter(value, [])


@pytest.mark.parametrize("value", [None, 42, b"11111111-1111-1111-1111-111111111111", [G1]])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(InvalidPrincipal):
        security_filter(None, [value])  # type: ignore[list-item]


def test_a_bare_string_of_groups_is_refused() -> None:
    with pytest.raises(InvalidPrincipal):
        security_filter(None, G1)


def test_principal_values_must_be_documented_ones() -> None:
    with pytest.raises(InvalidPrincipal):
        security_filter(None, [], principal_values=[G1])
    with pytest.raises(InvalidPrincipal):
        security_filter(None, [], principal_values=["all"])


def test_the_direct_constructor_validates_too() -> None:
    with pytest.raises(InvalidPrincipal):
        SecurityFilter(user_id=None, group_ids=("x') or true or ('",))
    with pytest.raises(InvalidPrincipal):
        SecurityFilter(user_id="' or 1 eq 1 or '", group_ids=())


def test_error_message_is_truncated() -> None:
    with pytest.raises(InvalidPrincipal) as caught:
        security_filter(None, ["b" * 100_000])
    message = str(caught.value)
    assert len(message) < 300
    assert "100000 chars" in message


def test_documented_form_groups_and_user() -> None:
    f = security_filter(USER.upper(), [G2, G1.upper(), G2])
    assert f.user_id == USER
    assert f.group_ids == (G1, G2)
    assert f.to_odata() == (
        f"group_ids/any(g: search.in(g, '{G1},{G2}', ',')) or user_ids/any(u: u eq '{USER}')")


def test_documented_form_groups_only_and_user_only() -> None:
    assert security_filter(None, [G1]).to_odata() == f"group_ids/any(g: search.in(g, '{G1}', ','))"
    assert security_filter(USER, []).to_odata() == f"user_ids/any(u: u eq '{USER}')"


def test_empty_filter_matches_nothing() -> None:
    f = security_filter(None, [])
    assert f.matches_nothing
    assert f.to_odata() == NO_MATCH_ODATA == "false"
    assert not f.permits(["anything"], ["anyone"])
    assert not f.permits([], [])


def test_principal_values_join_the_groups() -> None:
    f = security_filter(USER, [G1], principal_values=[EVERYONE, EVERYONE_EXCEPT_EXTERNAL])
    assert set(f.group_ids) == {G1, EVERYONE, EVERYONE_EXCEPT_EXTERNAL}
    assert PRINCIPAL_VALUES == {EVERYONE, EVERYONE_EXCEPT_EXTERNAL}
    assert "everyone-internal" in f.to_odata()


def test_thousands_of_groups_make_one_clause() -> None:
    groups = [str(uuid.UUID(int=i)) for i in range(5000)]
    odata = security_filter(USER, reversed(groups)).to_odata()
    assert odata.count("search.in") == 1
    assert odata.count(" or ") == 1
    assert len(_parse(odata)[0]) == 5000


def test_permits_is_the_set_semantics() -> None:
    f = security_filter(USER, [G1])
    assert f.permits([G1, G2], [])
    assert f.permits([], [USER])
    assert not f.permits([G2], ["ffffffff-ffff-ffff-ffff-ffffffffffff"])
    assert not f.permits([], [])


_ODATA = re.compile(
    r"(?:group_ids/any\(g: search\.in\(g, '(?P<groups>[^']*)', ','\)\))?"
    r"(?: or )?"
    r"(?:user_ids/any\(u: u eq '(?P<user>[^']*)'\))?")


def _parse(odata: str) -> tuple[set[str], str | None]:
    """The group ids and user id of a filter in the documented form."""
    match = _ODATA.fullmatch(odata)
    assert match is not None, odata
    groups = match.group("groups")
    return (set(groups.split(",")) if groups else set()), match.group("user")


guids = st.uuids().map(str) | st.uuids().map(lambda u: str(u).upper())


@given(st.lists(guids, max_size=60), st.none() | guids)
def test_odata_round_trips_valid_guids(groups: list[str], user: str | None) -> None:
    f = security_filter(user, groups)
    odata = f.to_odata()
    if not groups and user is None:
        assert odata == "false"
        return
    parsed_groups, parsed_user = _parse(odata)
    assert parsed_groups == {g.lower() for g in groups}
    assert parsed_user == (user.lower() if user else None)
    assert odata.count("'") == 2 * (bool(groups) + (user is not None)) + (2 if groups else 0)


@given(st.lists(guids, max_size=20))
def test_order_and_duplicates_do_not_change_the_filter(groups: list[str]) -> None:
    assert security_filter(None, groups).to_odata() == \
        security_filter(None, list(reversed(groups)) + groups).to_odata()


@given(st.text(max_size=80))
def test_arbitrary_text_is_a_guid_or_refused(value: str) -> None:
    try:
        f = security_filter(None, [value])
    except InvalidPrincipal:
        return
    # Accepted: then it must be a canonical GUID or a principal value, nothing else.
    (group,) = f.group_ids
    assert group in PRINCIPAL_VALUES or str(uuid.UUID(group)) == group
