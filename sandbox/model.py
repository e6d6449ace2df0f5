"""The values a sandbox tenant is made of: directory objects, sites, libraries, items, grants.

`User`, `Group`, `SiteGroup`, `Site`, `Drive` and `Item` are what callers see. `Node` is the
tenant's own mutable record of one drive item; it never leaves `sandbox/`, callers get an
`Item` snapshot of it instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sandbox.content import Content

Role = Literal["read", "write", "owner"]
GroupKind = Literal["security", "m365"]
ItemKind = Literal["file", "folder", "page"]
NodeKind = Literal["root", "folder", "file", "page"]
LinkType = Literal["view", "edit"]
LinkScope = Literal["users", "organization", "anonymous"]
Associated = Literal["owners", "members", "visitors"]

ROLES: tuple[Role, ...] = ("read", "write", "owner")

# SharePoint login-name claims (learn.microsoft.com/answers/questions/349797; PnP ensureEntraGroup).
USER_CLAIM = "i:0#.f|membership|"
SECURITY_GROUP_CLAIM = "c:0t.c|tenant|"
M365_GROUP_CLAIM = "c:0o.c|federateddirectoryclaimprovider|"
M365_OWNERS_SUFFIX = "_o"
EVERYONE_EXCEPT_GUESTS_CLAIM = "c:0-.f|rolemanager|spo-grid-all-users/"
EVERYONE_CLAIM = "c:0(.s|true"


@dataclass(frozen=True, slots=True)
class User:
    """An Entra user; `is_guest` marks an external (B2B) account."""

    id: str
    upn: str
    display_name: str
    is_guest: bool = False
    mail: str | None = None

    @property
    def login_name(self) -> str:
        """The user's SharePoint claim, `i:0#.f|membership|<upn>`."""
        return USER_CLAIM + self.upn.lower()


@dataclass(slots=True)
class Group:
    """An Entra group. Members are users and groups (nesting); owners are users."""

    id: str
    display_name: str
    kind: GroupKind
    member_user_ids: list[str] = field(default_factory=list)
    member_group_ids: list[str] = field(default_factory=list)
    owner_ids: list[str] = field(default_factory=list)
    mail: str | None = None

    @property
    def login_name(self) -> str:
        """The group's SharePoint claim: `c:0t.c|tenant|<id>` or, for M365, the federated form."""
        prefix = M365_GROUP_CLAIM if self.kind == "m365" else SECURITY_GROUP_CLAIM
        return prefix + self.id


@dataclass(slots=True)
class SiteGroup:
    """A SharePoint site group: a site-scoped integer id whose members are login claims."""

    id: int
    title: str
    member_claims: list[str] = field(default_factory=list)
    associated: Associated | None = None
    description: str = ""

    @property
    def login_name(self) -> str:
        """SharePoint uses a site group's title as its login name."""
        return self.title


@dataclass(frozen=True, slots=True)
class Link:
    """A sharing link. Only `scope="users"` links grant anything to named people."""

    id: str
    type: LinkType
    scope: LinkScope
    recipient_ids: tuple[str, ...] = ()

    @property
    def role(self) -> Role:
        """What the link lets its holder do: view links read, edit links write."""
        return "write" if self.type == "edit" else "read"


@dataclass(frozen=True, slots=True)
class Grant:
    """One entry of an item's permissions: exactly one of user, group, site group or link."""

    role: Role = "read"
    user_id: str | None = None
    group_id: str | None = None
    site_group_id: int | None = None
    link: Link | None = None

    @property
    def kind(self) -> str:
        """`user`, `group`, `site_group` or `link`."""
        if self.user_id is not None:
            return "user"
        if self.group_id is not None:
            return "group"
        if self.site_group_id is not None:
            return "site_group"
        return "link"


@dataclass(slots=True)
class Drive:
    """A document library, or the Site Pages library (`system=True`)."""

    id: str
    name: str
    web_url: str
    system: bool
    site_id: str
    url_name: str
    list_id: str
    root_id: str
    description: str = ""


@dataclass(slots=True)
class Site:
    """A SharePoint site. `grants` are the site-level permissions (the top of every hierarchy)."""

    id: str
    name: str
    display_name: str
    web_url: str
    path: str
    drives: list[Drive] = field(default_factory=list)
    site_groups: list[SiteGroup] = field(default_factory=list)
    grants: list[Grant] = field(default_factory=list)
    description: str = ""

    @property
    def site_guid(self) -> str:
        """The site collection GUID, the middle part of `host,siteGuid,webGuid`."""
        return self.id.split(",")[1]

    @property
    def web_guid(self) -> str:
        """The web GUID, the last part of `host,siteGuid,webGuid`."""
        return self.id.split(",")[2]

    def site_group(self, group_id: int) -> SiteGroup | None:
        """The site group with this integer id, if the site has one."""
        return next((g for g in self.site_groups if g.id == group_id), None)

    def associated_group(self, which: Associated) -> SiteGroup | None:
        """The site's associated Owners, Members or Visitors group."""
        return next((g for g in self.site_groups if g.associated == which), None)


@dataclass(slots=True)
class PageContent:
    """The parts of a modern page that the pages API exposes."""

    page_id: str
    title: str
    webparts: list[tuple[str, str]]  # (web part id, inner HTML)


@dataclass(frozen=True, slots=True)
class Item:
    """A snapshot of one file, folder or page, as tests and assertions see it.

    `path` is the folder that holds the item inside its library ("/HR/Policies"; root "/").
    `text` is the plain text the content holds (None for bad inputs); `page_texts` is the text
    of each page of a generated PDF. `bad_input` is one of "corrupt", "encrypted", "empty",
    "too_large", "unsupported_format", or None.
    """

    drive_id: str
    item_id: str
    name: str
    kind: ItemKind
    web_url: str
    path: str
    mime_type: str | None
    size: int
    site_id: str
    title: str
    page_texts: list[str] | None
    text: str | None
    bad_input: str | None
    parent_id: str | None = None
    page_id: str | None = None
    etag: str = ""
    ctag: str | None = None
    last_modified: str = ""
    has_unique_permissions: bool = False
    deleted: bool = False


@dataclass(eq=False, slots=True)
class Node:
    """The tenant's mutable record of one drive item (root, folder, file or page).

    `ordinal` orders the delta feed; it only ever grows (see `Tenant` on why). `change_seq` is
    the tenant sequence of the item's last change of any kind, `perm_seq` that of its last
    permission change. `grants is None` means the item inherits its permissions.
    """

    drive_id: str
    item_id: str
    name: str
    kind: NodeKind
    parent_id: str | None
    guid: str
    list_item_id: int
    ordinal: int
    created: str
    modified: str
    author_id: str | None = None
    editor_id: str | None = None
    content: Content | None = None
    text: str | None = None
    page_texts: list[str] | None = None
    bad_input: str | None = None
    grants: list[Grant] | None = None
    page: PageContent | None = None
    children: list[Node] = field(default_factory=list)
    version: int = 1
    content_version: int = 1
    change_seq: int = 0
    perm_seq: int = 0
    deleted_seq: int | None = None
    delete_op: int | None = None

    @property
    def is_folder(self) -> bool:
        """True for the root and for folders."""
        return self.kind in ("root", "folder")

    @property
    def deleted(self) -> bool:
        """True once the item is in the recycle bin."""
        return self.deleted_seq is not None

    @property
    def etag(self) -> str:
        """Changes on any change to the item."""
        return f'"{{{self.guid.upper()}}},{self.version}"'

    @property
    def ctag(self) -> str:
        """Changes only when the content changes."""
        return f'"c:{{{self.guid.upper()}}},{self.content_version}"'
