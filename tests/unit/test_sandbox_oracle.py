"""The permission oracle (`Tenant.can_read`) says who may read what, as SharePoint would.

Defends: permissions inherit from site to library to folder to item until an item with unique
permissions breaks the chain; group grants reach members through any depth of nesting;
site groups are resolved through their member claims, where the M365 `_o` claim means the
group's owners only and `spo-grid-all-users` excludes guests while `c:0(.s|true` does not;
specific-people links reach their recipients and organization/anonymous links reach nobody;
a deleted item is readable by nobody; and membership changes take effect at once.
"""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.loader import build_tenant
from sandbox.tenant import Tenant

A, B, C, G = "a@t.example", "b@t.example", "c@t.example", "g@ext.example"


def make_tenant(site_groups: list[dict[str, Any]], site_permissions: list[dict[str, Any]] | None, items: list[dict[str, Any]],
                library_permissions: Any = "inherit") -> Tenant:  # fmt: skip
    site: dict[str, Any] = {
        "path": "/sites/t",
        "display_name": "T",
        "site_groups": site_groups,
        "libraries": [{"name": "Documents", "permissions": library_permissions, "items": items}],
    }
    if site_permissions is not None:
        site["permissions"] = site_permissions
    return build_tenant(
        {
            "tenant": {"name": "T", "hostname": "t.sharepoint.com"},
            "users": [
                {"upn": A, "display_name": "A"},
                {"upn": B, "display_name": "B"},
                {"upn": C, "display_name": "C"},
                {"upn": G, "display_name": "G", "guest": True},
            ],
            "groups": [
                {"name": "Inner", "kind": "security", "members": [A]},
                {"name": "Middle", "kind": "security", "members": [{"group": "Inner"}]},
                {"name": "Outer", "kind": "security", "members": [{"group": "Middle"}, G]},
                {"name": "Team", "kind": "m365", "members": [A], "owners": [B]},
            ],
            "sites": [site],
        }
    )


def readers(tenant: Tenant, name: str) -> set[str]:
    item = tenant.find_item(name)
    return {tenant.user(u).upn for u in tenant.readers(item.drive_id, item.item_id)}


def test_items_inherit_from_the_site_through_library_and_folders() -> None:
    tenant = make_tenant([], [{"user": A}], [{"folder": "F", "children": [{"folder": "G", "children": [{"file": "x.txt", "text": "x"}]}]}])
    assert readers(tenant, "x.txt") == {A}


def test_unique_permissions_break_inheritance_at_any_level() -> None:
    tenant = make_tenant(
        [],
        [{"user": A}],
        [
            {"folder": "Open", "children": [{"file": "open.txt", "text": "x"}]},
            {"folder": "Closed", "permissions": [{"user": B}], "children": [
                {"file": "closed.txt", "text": "x"},
                {"file": "reopened.txt", "text": "x", "permissions": [{"user": C, "role": "write"}]},
            ]},
        ],
        library_permissions=[{"user": A}, {"user": C}],
    )  # fmt: skip
    assert readers(tenant, "open.txt") == {A, C}  # from the library, not the site
    assert readers(tenant, "closed.txt") == {B}
    assert readers(tenant, "reopened.txt") == {C}


def test_group_grants_follow_nesting_and_membership_changes() -> None:
    tenant = make_tenant([], [{"group": "Outer"}], [{"file": "x.txt", "text": "x"}])
    assert readers(tenant, "x.txt") == {A, G}
    assert tenant.transitive_group_ids(A) == {tenant.group(n).id for n in ("Inner", "Middle", "Outer", "Team")}
    tenant.remove_group_member("Middle", "Inner")
    assert readers(tenant, "x.txt") == {G}
    tenant.add_group_member("Inner", C)
    tenant.add_group_member("Outer", "Inner")
    assert readers(tenant, "x.txt") == {A, C, G}


def test_nested_groups_tolerate_cycles() -> None:
    tenant = make_tenant([], [{"group": "Outer"}], [{"file": "x.txt", "text": "x"}])
    tenant.add_group_member("Inner", "Outer")  # Outer > Middle > Inner > Outer
    assert readers(tenant, "x.txt") == {A, G}


@pytest.mark.parametrize(
    ("claim", "expected"),
    [
        ({"m365_members": "Team"}, {A}),
        ({"m365_owners": "Team"}, {B}),  # the `_o` claim: owners only, not members
        ({"security_group": "Outer"}, {A, G}),
        ({"user": C}, {C}),
        ({"everyone_except_guests": True}, {A, B, C}),
        ({"everyone": True}, {A, B, C, G}),
        ("c:0-.f|rolemanager|spo-grid-all-users/00000000-0000-0000-0000-000000000001", {A, B, C}),
        (f"i:0#.f|membership|{C.upper()}", {C}),  # claims compare case-insensitively
    ],
)
def test_site_groups_resolve_through_their_claims(claim: Any, expected: set[str]) -> None:
    tenant = make_tenant([{"id": 7, "title": "Readers", "members": [claim]}], [{"site_group": 7}], [{"file": "x.txt", "text": "x"}])
    assert readers(tenant, "x.txt") == expected


def test_associated_site_groups_are_the_default_site_permissions() -> None:
    groups = [
        {"id": 3, "title": "Owners", "associated": "owners", "members": [{"user": A}]},
        {"id": 4, "title": "Visitors", "associated": "visitors", "members": [{"user": B}]},
        {"id": 5, "title": "Members", "associated": "members", "members": [{"user": C}]},
    ]
    tenant = make_tenant(groups, None, [{"file": "x.txt", "text": "x"}])
    assert readers(tenant, "x.txt") == {A, B, C}
    assert [(g.site_group_id, g.role) for g in tenant.sites[0].grants] == [(3, "owner"), (5, "write"), (4, "read")]


def test_specific_people_links_grant_their_recipients_only() -> None:
    tenant = make_tenant([], [{"user": A}], [
        {"file": "people.txt", "text": "x", "permissions": [{"user": A}, {"link": {"type": "view", "scope": "users", "recipients": [C, G]}}]},
        {"file": "org.txt", "text": "x", "permissions": [{"user": A}, {"link": {"type": "edit", "scope": "organization"}}]},
        {"file": "anyone.txt", "text": "x", "permissions": [{"link": {"type": "view", "scope": "anonymous"}}]},
    ])  # fmt: skip
    assert readers(tenant, "people.txt") == {A, C, G}
    assert readers(tenant, "org.txt") == {A}  # organization links grant nobody by policy
    assert readers(tenant, "anyone.txt") == set()  # nor do anonymous links


def test_deleted_items_are_readable_by_nobody_until_restored() -> None:
    tenant = make_tenant([], [{"user": A}], [{"folder": "F", "children": [{"file": "x.txt", "text": "x"}]}])
    item = tenant.find_item("x.txt")
    folder = tenant.items(include_folders=True)[0]
    tenant.delete(folder.drive_id, folder.item_id)
    assert not tenant.can_read(A, item.drive_id, item.item_id)
    tenant.restore(folder.drive_id, folder.item_id)
    assert tenant.can_read(A, item.drive_id, item.item_id)


def test_set_permissions_and_inherit_again() -> None:
    tenant = make_tenant([], [{"user": A}], [{"file": "x.txt", "text": "x"}])
    item = tenant.find_item("x.txt")
    tenant.set_permissions(item.drive_id, item.item_id, [{"user": B}])
    assert readers(tenant, "x.txt") == {B}
    assert tenant.item(item.drive_id, item.item_id).has_unique_permissions
    tenant.set_permissions(item.drive_id, item.item_id, None)
    assert readers(tenant, "x.txt") == {A}
    tenant.set_site_permissions(tenant.sites[0].id, [{"user": C}])
    assert readers(tenant, "x.txt") == {C}


def test_users_are_found_by_upn_or_id() -> None:
    tenant = make_tenant([], [{"user": A}], [{"file": "x.txt", "text": "x"}])
    user = tenant.user(A.upper())
    assert tenant.user(user.id) == user
    item = tenant.find_item("x.txt")
    assert tenant.can_read(user.id, item.drive_id, item.item_id) and tenant.can_read(A, item.drive_id, item.item_id)
