"""The sandbox tenant: sites, libraries, items and permissions, the permission oracle, and queries.

    from sandbox.tenant import Tenant, load_tenant
    tenant = load_tenant()                    # the shipped demo tenant
    tenant.can_read(user_id, drive_id, item_id)

Mutations (for delta tests) live in `sandbox.mutations` and are methods of `Tenant` too. Every
mutation takes the tenant lock, bumps the tenant-wide change `sequence`, and stamps each item it
touches with that sequence, which is what a delta link with a token compares against.

Delta order: every item carries an `ordinal` that only ever grows. A delta page lists items in
ordinal order after a cursor (the last ordinal served), so an item changed while a client is
paging is either served again or served later, never skipped. Creation, and moving an item under
a younger folder, give parents smaller ordinals than their children; deletion renumbers a subtree
children-first.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

from sandbox.access import Directory
from sandbox.content import mime_type_for
from sandbox.ids import derived_guid, derived_item_id, iso
from sandbox.model import (
    EVERYONE_CLAIM,
    EVERYONE_EXCEPT_GUESTS_CLAIM,
    Drive,
    Grant,
    Group,
    Item,
    Node,
    Site,
    User,
)
from sandbox.mutations import TenantMutations
from sandbox.samples import Rendered

DEFAULT_BASE_TIME = datetime(2025, 1, 6, 9, 0, 0, tzinfo=timezone.utc)

__all__ = [
    "Tenant", "load_tenant", "DemoQuestion", "Item", "User", "Group", "Site", "Drive", "Grant",
    "derived_guid", "derived_item_id", "iso",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class DemoQuestion:
    """A question the demo asks: `document` answers it for `visible_to`, not for `hidden_from`."""

    question: str
    document: str
    visible_to: str
    hidden_from: str


class Tenant(TenantMutations):
    """A SharePoint Online tenant in memory. Thread-safe: every public method takes `lock`."""

    def __init__(
        self,
        tenant_id: str,
        name: str,
        hostname: str,
        users: list[User],
        groups: list[Group],
        *,
        base_time: datetime = DEFAULT_BASE_TIME,
        source: Path | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.name = name
        self.hostname = hostname
        self.directory = Directory(users, groups)
        self.sites: list[Site] = []
        self.demo_questions: list[DemoQuestion] = []
        self.source = source
        self.base_time = base_time
        self.lock = threading.RLock()
        self.sequence = 0
        self._ordinal = 0
        self._mutation_epoch = base_time + timedelta(days=1)
        self._drives: dict[str, Drive] = {}
        self._nodes: dict[str, dict[str, Node]] = {}
        self._pages: dict[tuple[str, str], Node] = {}
        self._list_item_ids: dict[str, int] = {}
        self._principal_ids: dict[str, int] = {}

    # --- directory --------------------------------------------------------------------------

    @property
    def users(self) -> list[User]:
        """Every user, in tenant-file order."""
        return list(self.directory.users.values())

    @property
    def groups(self) -> list[Group]:
        """Every Entra group, in tenant-file order."""
        return list(self.directory.groups.values())

    def user(self, upn_or_id: str) -> User:
        """The user with this UPN or object id; KeyError when there is none."""
        return self.directory.user(upn_or_id)

    def group(self, name_or_id: str) -> Group:
        """The group with this display name or object id; KeyError when there is none."""
        return self.directory.group(name_or_id)

    def transitive_group_ids(self, user_id: str) -> set[str]:
        """Ids of every Entra group the user belongs to, through any depth of nesting."""
        with self.lock:
            return self.directory.transitive_group_ids(self.user(user_id).id)

    def principal_id(self, login_name: str) -> int:
        """The site-scoped integer id SharePoint shows for a user or claim (stable per tenant)."""
        with self.lock:
            key = login_name.lower()
            if key not in self._principal_ids:
                self._principal_ids[key] = 1000 + len(self._principal_ids)
            return self._principal_ids[key]

    def describe_claim(self, claim: str) -> tuple[str, int, str]:
        """(title, PrincipalType, email) of a login claim, as SharePoint REST lists it."""
        lowered = claim.lower()
        if lowered == EVERYONE_CLAIM:
            return "Everyone", 4, ""
        if lowered.startswith(EVERYONE_EXCEPT_GUESTS_CLAIM):
            return "Everyone except external users", 4, ""
        principal = claim.split("|")[-1]
        if lowered.startswith("i:0#.f|membership|"):
            try:
                user = self.user(principal)
                return user.display_name, 1, user.mail or user.upn
            except KeyError:
                return principal, 1, principal
        owners = principal.endswith("_o")
        try:
            group = self.group(principal[:-2] if owners else principal)
        except KeyError:
            return principal, 4, ""
        return group.display_name + (" Owners" if owners else ""), 4, group.mail or ""

    # --- sites, drives, items ---------------------------------------------------------------

    def site(self, id_or_name: str) -> Site:
        """The site with this Graph id, name (URL segment), display name or path."""
        wanted = id_or_name.lower()
        for site in self.sites:
            if wanted in (site.id.lower(), site.name.lower(), site.display_name.lower(), site.path.lower()):
                return site
        for site in self.sites:  # Graph also resolves a site by its site-collection GUID alone.
            if wanted in (site.site_guid.lower(), f"{self.hostname},{site.site_guid}".lower()):
                return site
        raise KeyError(id_or_name)

    def has_drive(self, drive_id: str) -> bool:
        """True when the tenant has a library with this drive id."""
        return drive_id in self._drives

    @property
    def mutation_epoch(self) -> datetime:
        """The logical clock's zero: mutation number n happens n seconds after it."""
        return self._mutation_epoch

    def drive(self, drive_id: str) -> Drive:
        """The library with this drive id; KeyError when there is none."""
        return self._drives[drive_id]

    def site_of_drive(self, drive_id: str) -> Site:
        """The site a library belongs to."""
        return self.site(self._drives[drive_id].site_id)

    def pages_drive(self, site_id: str) -> Drive:
        """The Site Pages library of a site."""
        site = self.site(site_id)
        return next(d for d in site.drives if d.system)

    def items(self, include_folders: bool = False) -> list[Item]:
        """Every live file and page (and folder, if asked; never library roots), in tree order."""
        with self.lock:
            wanted = ("file", "page", "folder") if include_folders else ("file", "page")
            return [
                self.snapshot(node)
                for drive in self._drives.values()
                for node in self.walk(self.root(drive.id))
                if node.kind in wanted
            ]

    def item(self, drive_id: str, item_id: str) -> Item:
        """A snapshot of one item (deleted ones too; `item_id` may be "root")."""
        with self.lock:
            return self.snapshot(self.node(drive_id, item_id))

    def find_item(self, name: str) -> Item:
        """The one live file or page with this name; KeyError if none, ValueError if several."""
        found = [item for item in self.items() if item.name == name]
        if not found:
            raise KeyError(name)
        if len(found) > 1:
            raise ValueError(f"{len(found)} items are named {name!r}")
        return found[0]

    def page_item(self, site_id: str, page_id: str) -> Item:
        """The Site Pages item of a page, by site and sitePage id."""
        with self.lock:
            return self.snapshot(self.page_node(site_id, page_id))

    # --- the oracle ---------------------------------------------------------------------------

    def can_read(self, user_id: str, drive_id: str, item_id: str) -> bool:
        """THE ORACLE: may this user (id or UPN) read this item? Rules: `sandbox.access`.

        Effective permissions are those of the nearest item, folder, library or site with
        unique permissions. Deleted items are readable by nobody.
        """
        with self.lock:
            node = self.node(drive_id, item_id)
            if node.deleted:
                return False
            user = self.user(user_id)
            site = self.site_of_drive(drive_id)
            return any(self.directory.grant_reaches(g, user, site) for g in self.effective_grants(node))

    def readers(self, drive_id: str, item_id: str) -> set[str]:
        """Ids of every user the oracle lets read the item."""
        with self.lock:
            return {u.id for u in self.users if self.can_read(u.id, drive_id, item_id)}

    def effective_grants(self, node: Node) -> list[Grant]:
        """The grants that apply to an item: its own, or its nearest unique ancestor's."""
        with self.lock:
            return list(self.permission_source(node)[1])

    def permission_source(self, node: Node) -> tuple[Node | None, list[Grant]]:
        """(the item or ancestor whose grants apply, or None for the site; those grants)."""
        current: Node | None = node
        while current is not None:
            if current.grants is not None:
                return current, current.grants
            current = self._parent(current)
        return None, self.site_of_drive(node.drive_id).grants

    # --- internals shared with the server and the mutations -------------------------------------

    def node(self, drive_id: str, item_id: str) -> Node:
        """The tenant's record of an item; `item_id` "root" names the library root."""
        nodes = self._nodes[drive_id]
        if item_id == "root":
            return self.root(drive_id)
        return nodes[item_id]

    def root(self, drive_id: str) -> Node:
        """The root folder of a library."""
        return self._nodes[drive_id][self._drives[drive_id].root_id]

    def page_node(self, site_id: str, page_id: str) -> Node:
        """The Site Pages item of a page; KeyError when the site has no such page."""
        site = self.site(site_id)
        return self._pages[(site.id, page_id.lower())]

    def drive_nodes(self, drive_id: str) -> list[Node]:
        """Every record of a library, deleted ones included, in no particular order."""
        return list(self._nodes[drive_id].values())

    def walk(self, node: Node, *, include_deleted: bool = False) -> Iterator[Node]:
        """The node and its descendants, parents first."""
        if node.deleted and not include_deleted:
            return
        yield node
        for child in node.children:
            yield from self.walk(child, include_deleted=include_deleted)

    def _parent(self, node: Node) -> Node | None:
        return self._nodes[node.drive_id][node.parent_id] if node.parent_id else None

    def folder_path(self, node: Node) -> str:
        """The path of the folder holding `node` inside its library ("/" at the root)."""
        names: list[str] = []
        parent = self._parent(node)
        while parent is not None and parent.kind != "root":
            names.append(parent.name)
            parent = self._parent(parent)
        return "/" + "/".join(reversed(names))

    def web_url(self, node: Node) -> str:
        """The item's SharePoint URL (on the tenant's real host name, as Graph reports it)."""
        drive = self._drives[node.drive_id]
        if node.kind == "root":
            return drive.web_url
        inner = self.folder_path(node).rstrip("/") + "/" + node.name
        return drive.web_url + quote(inner)

    def size_of(self, node: Node) -> int:
        """A file's size in bytes; for a folder, the total of what it holds."""
        if not node.is_folder:
            return node.content.size if node.content else 0
        return sum(self.size_of(child) for child in node.children if not child.deleted)

    def snapshot(self, node: Node) -> Item:
        """The public view of a node."""
        site = self.site_of_drive(node.drive_id)
        kind = "folder" if node.is_folder else node.kind
        title = node.page.title if node.page else node.name
        return Item(
            drive_id=node.drive_id,
            item_id=node.item_id,
            name=node.name,
            kind=kind,  # type: ignore[arg-type]
            web_url=self.web_url(node),
            path=self.folder_path(node),
            mime_type=None if node.is_folder else mime_type_for(node.name),
            size=self.size_of(node),
            site_id=site.id,
            title=title,
            page_texts=list(node.page_texts) if node.page_texts is not None else None,
            text=node.text,
            bad_input=node.bad_input,
            parent_id=node.parent_id,
            page_id=node.page.page_id if node.page else None,
            etag=node.etag,
            ctag=None if node.is_folder else node.ctag,
            last_modified=node.modified,
            has_unique_permissions=node.grants is not None,
            deleted=node.deleted,
        )

    def next_ordinal(self) -> int:
        """The next position in delta order."""
        self._ordinal += 1
        return self._ordinal

    def mutation_time(self) -> str:
        """The timestamp of the current mutation: a logical clock, so runs are reproducible."""
        return iso(self._mutation_epoch + timedelta(seconds=self.sequence))

    def register_drive(self, site: Site, drive: Drive, root_grants: list[Grant] | None, when: str) -> Node:
        """Add a library (and its root folder) to a site; used while loading."""
        site.drives.append(drive)
        self._drives[drive.id] = drive
        self._nodes[drive.id] = {}
        self._list_item_ids[drive.id] = 0
        root = Node(
            drive_id=drive.id, item_id=drive.root_id, name="root", kind="root", parent_id=None,
            guid=derived_guid(drive.id, "root"), list_item_id=0, ordinal=self.next_ordinal(),
            created=when, modified=when, grants=root_grants,
        )  # fmt: skip
        self._nodes[drive.id][root.item_id] = root
        return root

    def create_node(
        self,
        parent: Node,
        name: str,
        kind: str,
        *,
        item_id: str | None = None,
        rendered: Rendered | None = None,
        grants: list[Grant] | None = None,
        when: str | None = None,
        author_id: str | None = None,
    ) -> Node:
        """Add a folder, file or page under `parent`, stamped with the current sequence."""
        drive_id = parent.drive_id
        if any(c.name.lower() == name.lower() and not c.deleted for c in parent.children):
            raise ValueError(f"{self.folder_path(parent)}/{parent.name}: an item named {name!r} exists")
        if item_id is None:
            item_id = derived_item_id(drive_id, f"{parent.item_id}/{name}#{self.sequence}")
        if item_id in self._nodes[drive_id]:
            raise ValueError(f"duplicate item id {item_id} in drive {drive_id}")
        self._list_item_ids[drive_id] += 1
        when = when or self.mutation_time()
        node = Node(
            drive_id=drive_id, item_id=item_id, name=name, kind=kind,  # type: ignore[arg-type]
            parent_id=parent.item_id, guid=derived_guid(drive_id, item_id),
            list_item_id=self._list_item_ids[drive_id], ordinal=self.next_ordinal(),
            created=when, modified=when, author_id=author_id, editor_id=author_id,
            grants=grants, change_seq=self.sequence, perm_seq=self.sequence,
        )  # fmt: skip
        if rendered is not None:
            self.set_rendered(node, rendered)
        parent.children.append(node)
        self._nodes[drive_id][item_id] = node
        return node

    def register_page(self, site: Site, node: Node) -> None:
        """Make a Site Pages item reachable through the pages API."""
        assert node.page is not None
        self._pages[(site.id, node.page.page_id.lower())] = node

    def unregister_page(self, site: Site, node: Node) -> None:
        """Hide a deleted page from the pages API."""
        if node.page is not None:
            self._pages.pop((site.id, node.page.page_id.lower()), None)

    @staticmethod
    def set_rendered(node: Node, rendered: Rendered) -> bool:
        """Give a node new content; True when the bytes differ from what it had."""
        changed = node.content is None or node.content.sha256 != rendered.content.sha256
        node.content = rendered.content
        node.text = rendered.text
        node.page_texts = rendered.page_texts
        node.bad_input = rendered.bad_input
        return changed

    def finish_loading(self) -> None:
        """Start the mutation clock after the newest timestamp in the tenant file."""
        stamps = [n.modified for nodes in self._nodes.values() for n in nodes.values()]
        newest = max([iso(self.base_time), *stamps])
        self._mutation_epoch = datetime.strptime(newest, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=timezone.utc
        ) + timedelta(days=1)


def load_tenant(path_or_name: str | Path = "demo") -> Tenant:
    """Load a tenant file: a path, or the name of a file in `sandbox/tenants/` ("demo")."""
    from sandbox.loader import load_tenant_file

    return load_tenant_file(path_or_name)
