"""A sandbox tenant holding one of each SharePoint permission form spindex must map.

Scenarios (item name -> what it tests):
  sec-group.md          a grant to an Entra security group
  nested.md             a grant to a group whose members include another group
  m365-members.md       site group holding a Microsoft 365 group's members claim
  m365-owners.md        site group holding the group's OWNERS claim (owner Olga is no member)
  direct-user.md        a grant to one user
  guest.md              a grant to a guest
  internal-only.md      "Everyone except external users" claim: no guests
  everyone.md           "Everyone" claim: guests too
  people-link.md        a specific-people sharing link: its recipients
  org-link.md           an organization-wide link: nobody beyond the other grants (default policy)
  anon-link.md          an anonymous link: nobody beyond the other grants
  Broken/inherits.md    a folder with broken inheritance; its child inherits from the folder
  Broken/unique.md      a file with its own unique permissions inside that folder
  empty-group.md        a site group with no members: nobody
  crowd.md              a site group with 1,500 members
  site-default.md       site-level permissions through the associated site groups
"""

from __future__ import annotations

from typing import Any

DOMAIN = "acl.example"
CROWD = 1500


def upn(name: str) -> str:
    return f"{name}@{DOMAIN}"


NAMED = ["ann", "ben", "cai", "dee", "eli", "fay", "gus", "olga"]


def acl_tenant_document(crowd: int = CROWD) -> dict[str, Any]:
    """The tenant file, as the dict `sandbox.loader.build_tenant` takes."""
    users: list[dict[str, Any]] = [{"upn": upn(n), "display_name": n.title()} for n in NAMED]
    users.append({"upn": "gina_partner.example#EXT#@" + DOMAIN, "display_name": "Gina (guest)", "guest": True})
    users += [{"upn": upn(f"crowd{n:04d}"), "display_name": f"Crowd {n}"} for n in range(crowd)]
    guest = users[len(NAMED)]["upn"]
    groups = [
        {"name": "Security", "kind": "security", "members": [upn("ann"), upn("ben")]},
        {"name": "Inner", "kind": "security", "members": [upn("cai")]},
        {"name": "Outer", "kind": "security", "members": [{"group": "Inner"}, upn("dee")]},
        {"name": "Team", "kind": "m365", "members": [upn("eli"), upn("fay")], "owners": [upn("olga")]},
    ]
    site_groups = [
        {"id": 3, "title": "ACL Owners", "associated": "owners", "members": [upn("gus")]},
        {"id": 4, "title": "ACL Visitors", "associated": "visitors", "members": []},
        {"id": 5, "title": "ACL Members", "associated": "members", "members": [{"m365_members": "Team"}]},
        {"id": 6, "title": "Team Owners", "members": [{"m365_owners": "Team"}]},
        {"id": 7, "title": "Internal", "members": [{"everyone_except_guests": True}]},
        {"id": 8, "title": "Everyone", "members": [{"everyone": True}]},
        {"id": 9, "title": "Empty", "members": []},
        {"id": 10, "title": "Crowd", "members": [upn(f"crowd{n:04d}") for n in range(crowd)]},
    ]

    def doc(name: str, grants: list[dict[str, Any]] | None) -> dict[str, Any]:
        entry: dict[str, Any] = {"file": name, "text": f"# {name}\nThe scenario {name} about permission form {name[:-3]}."}
        if grants is not None:
            entry["permissions"] = grants
        return entry

    owner = {"site_group": 3, "role": "owner"}
    items = [
        doc("sec-group.md", [owner, {"group": "Security", "role": "read"}]),
        doc("nested.md", [owner, {"group": "Outer", "role": "read"}]),
        doc("m365-members.md", [owner, {"site_group": 5, "role": "write"}]),
        doc("m365-owners.md", [owner, {"site_group": 6, "role": "read"}]),
        doc("direct-user.md", [owner, {"user": upn("ben"), "role": "read"}]),
        doc("guest.md", [owner, {"user": guest, "role": "read"}]),
        doc("internal-only.md", [owner, {"site_group": 7, "role": "read"}]),
        doc("everyone.md", [owner, {"site_group": 8, "role": "read"}]),
        doc("people-link.md", [owner, {"link": {"type": "view", "scope": "users", "recipients": [upn("dee"), guest]}}]),
        doc("org-link.md", [owner, {"link": {"type": "view", "scope": "organization"}}]),
        doc("anon-link.md", [owner, {"link": {"type": "edit", "scope": "anonymous"}}]),
        {
            "folder": "Broken",
            "permissions": [owner, {"user": upn("fay"), "role": "read"}],
            "children": [doc("inherits.md", None), doc("unique.md", [{"user": upn("ann"), "role": "read"}])],
        },
        doc("empty-group.md", [{"site_group": 9, "role": "read"}]),
        doc("crowd.md", [owner, {"site_group": 10, "role": "read"}]),
        doc("site-default.md", None),
    ]
    return {
        "tenant": {"id": "6f1d2a4e-0b7c-4d5e-9f10-2a3b4c5d6e7f", "name": "ACL Scenarios", "hostname": "aclco.sharepoint.com"},
        "users": users,
        "groups": groups,
        "sites": [
            {
                "path": "/sites/acl",
                "display_name": "ACL",
                "site_groups": site_groups,
                "libraries": [{"name": "Documents", "items": items}],
                "pages": [{"name": "News.aspx", "title": "News", "webparts": ["<p>Site news for everyone on the site.</p>"]}],
            }
        ],
    }
