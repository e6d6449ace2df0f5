"""Changes to a sandbox tenant, as SharePoint users make them: the raw material of delta tests.

Each mutation takes the tenant lock, bumps `tenant.sequence` once, and stamps the items it
changes. What a delta with a token then returns, per mutation:

| mutation                 | items returned                                   | eTag | cTag |
|--------------------------|--------------------------------------------------|------|------|
| add_file / add_folder    | the new item (and any folder created for it)     | new  | new  |
| update_content           | the file                                         | yes  | if the bytes differ |
| rename / move            | the item only, never a folder's descendants      | yes  | no   |
| delete                   | the item and its whole subtree, as deleted       | -    | -    |
| restore                  | the restored subtree                             | yes  | no   |
| set_permissions          | the item and every descendant that inherits from it (`sharedChanged`) | item only | no |
| set_site_permissions     | every inheriting library root and its inheriting items | no | no |
| group / site-group edits | nothing (membership is resolved at query time)   | -    | -    |
| add_page / edit_page     | the page's Site Pages item                       | yes  | if the HTML differs |
| delete_page              | the page's Site Pages item, as deleted           | -    | -    |
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sandbox.ids import derived_guid
from sandbox.model import USER_CLAIM, Grant, Item, Node, PageContent, SiteGroup
from sandbox.samples import render_content, render_page

if TYPE_CHECKING:
    from sandbox.tenant import Tenant

GrantSpec = Grant | dict[str, Any]


class TenantMutations:
    """The mutation methods of `Tenant` (a mixin, kept apart to keep each module short)."""

    # --- files and folders -----------------------------------------------------------------

    def add_file(
        self: Tenant,
        drive_id: str,
        folder_path: str,
        name: str,
        content: bytes | str,
        *,
        grants: Sequence[GrantSpec] | None = None,
        author: str | None = None,
    ) -> Item:
        """Upload a new file into `folder_path` ("/" or "/A/B"; missing folders are created).

        `content` as bytes is stored as is; as str it is rendered into the file's format like
        a tenant file's `text:` (so `"# Title\\nBody"` makes a real .docx for `x.docx`).
        """
        with self.lock:
            self._bump()
            parent = self._folder(drive_id, folder_path, create=True)
            node = self.create_node(
                parent, name, "file", rendered=render_content(content, name),
                grants=self._grants(drive_id, grants), author_id=self._author(author),
            )  # fmt: skip
            return self.snapshot(node)

    def add_folder(
        self: Tenant, drive_id: str, folder_path: str, name: str, *, grants: Sequence[GrantSpec] | None = None
    ) -> Item:
        """Create a folder `name` inside `folder_path`."""
        with self.lock:
            self._bump()
            parent = self._folder(drive_id, folder_path, create=True)
            return self.snapshot(self.create_node(parent, name, "folder", grants=self._grants(drive_id, grants)))

    def update_content(self: Tenant, drive_id: str, item_id: str, content: bytes | str) -> Item:
        """Save new content over a file (str is rendered into the file's format)."""
        with self.lock:
            node = self._live(drive_id, item_id)
            if node.kind != "file":
                raise ValueError(f"{node.name} is a {node.kind}; use edit_page for pages")
            seq = self._bump()
            if self.set_rendered(node, render_content(content, node.name)):
                node.content_version += 1
            self._touch(node, seq)
            return self.snapshot(node)

    def rename(self: Tenant, drive_id: str, item_id: str, new_name: str) -> Item:
        """Rename a file, folder or page in place."""
        with self.lock:
            node = self._live(drive_id, item_id)
            parent = self._parent(node)
            if node.kind == "root" or parent is None:
                raise ValueError("the library root cannot be renamed")
            self._check_free(parent, new_name, node)
            seq = self._bump()
            node.name = new_name
            self._touch(node, seq)
            return self.snapshot(node)

    def move(self: Tenant, drive_id: str, item_id: str, new_parent_item_id: str) -> Item:
        """Move an item (with its subtree) under another folder of the same library."""
        with self.lock:
            node = self._live(drive_id, item_id)
            target = self._live(drive_id, new_parent_item_id)
            if not target.is_folder:
                raise ValueError(f"{target.name} is not a folder")
            if any(n is target for n in self.walk(node)):
                raise ValueError("cannot move a folder into itself")
            old_parent = self._parent(node)
            if node.kind == "root" or old_parent is None:
                raise ValueError("the library root cannot be moved")
            self._check_free(target, node.name, node)
            seq = self._bump()
            old_parent.children.remove(node)
            target.children.append(node)
            node.parent_id = target.item_id
            if target.ordinal > node.ordinal:
                # Keep parents ahead of children in delta order: renumber the subtree after it.
                for moved in list(self.walk(node, include_deleted=True)):
                    moved.ordinal = self.next_ordinal()
            self._touch(node, seq)
            return self.snapshot(node)

    def delete(self: Tenant, drive_id: str, item_id: str) -> list[str]:
        """Send an item (a folder with its whole subtree) to the recycle bin; returns the ids."""
        with self.lock:
            node = self._live(drive_id, item_id)
            if node.kind == "root":
                raise ValueError("the library root cannot be deleted")
            seq = self._bump()
            subtree = list(self.walk(node))
            for gone in reversed(subtree):  # children first, in delta order too
                gone.ordinal = self.next_ordinal()
                gone.deleted_seq = seq
                gone.delete_op = seq
                gone.change_seq = seq
                if gone.page is not None:
                    self.unregister_page(self.site_of_drive(drive_id), gone)
            return [gone.item_id for gone in subtree]

    def restore(self: Tenant, drive_id: str, item_id: str) -> Item:
        """Bring an item back from the recycle bin, with what was deleted along with it."""
        with self.lock:
            node = self.node(drive_id, item_id)
            parent = self._parent(node)
            if not node.deleted or parent is None or parent.deleted:
                raise ValueError(f"{node.name} is not restorable (not deleted, or its folder is deleted)")
            self._check_free(parent, node.name, node)
            seq = self._bump()
            operation = node.delete_op
            for back in [n for n in self.walk(node, include_deleted=True) if n.delete_op == operation]:
                back.deleted_seq = back.delete_op = None
                back.ordinal = self.next_ordinal()
                self._touch(back, seq)
                if back.page is not None:
                    self.register_page(self.site_of_drive(drive_id), back)
            return self.snapshot(node)

    # --- permissions ------------------------------------------------------------------------

    def set_permissions(self: Tenant, drive_id: str, item_id: str, grants: Sequence[GrantSpec] | None) -> Item:
        """Give an item unique permissions (`grants`), or make it inherit again (`None`).

        `item_id` "root" sets the library's own permissions. Grants are `Grant` values or the
        tenant file's dicts: `{"user": upn, "role": "read"}`, `{"group": name}`,
        `{"site_group": 5}`, `{"link": {"type": "view", "scope": "users", "recipients": [upn]}}`.
        """
        with self.lock:
            node = self._live(drive_id, item_id)
            seq = self._bump()
            node.grants = self._grants(drive_id, grants)
            self._touch(node, seq, permissions=True)
            self._mark_inheritors(node, seq)
            return self.snapshot(node)

    def set_site_permissions(self: Tenant, site_id: str, grants: Sequence[GrantSpec]) -> None:
        """Replace a site's own permissions, which every inheriting library and item follows."""
        with self.lock:
            site = self.site(site_id)
            seq = self._bump()
            site.grants = self._grants(site.drives[0].id, grants) or []
            for drive in site.drives:
                root = self.root(drive.id)
                if root.grants is None:
                    root.change_seq = root.perm_seq = seq
                    self._mark_inheritors(root, seq)

    def add_group_member(self: Tenant, group: str, member: str) -> None:
        """Add a user (UPN or id) or a group (name or id) to an Entra group."""
        with self.lock:
            target = self.group(group)
            self._bump()
            kind, member_id = self._member(member)
            members = target.member_user_ids if kind == "user" else target.member_group_ids
            if member_id not in members:
                members.append(member_id)

    def remove_group_member(self: Tenant, group: str, member: str) -> None:
        """Remove a user or group from an Entra group's direct members."""
        with self.lock:
            target = self.group(group)
            self._bump()
            kind, member_id = self._member(member)
            members = target.member_user_ids if kind == "user" else target.member_group_ids
            if member_id in members:
                members.remove(member_id)

    def add_group_owner(self: Tenant, group: str, user: str) -> None:
        """Make a user an owner of an Entra group."""
        with self.lock:
            target, user_id = self.group(group), self.user(user).id
            self._bump()
            if user_id not in target.owner_ids:
                target.owner_ids.append(user_id)

    def remove_group_owner(self: Tenant, group: str, user: str) -> None:
        """Remove a user from an Entra group's owners."""
        with self.lock:
            target, user_id = self.group(group), self.user(user).id
            self._bump()
            if user_id in target.owner_ids:
                target.owner_ids.remove(user_id)

    def add_site_group_member(self: Tenant, site_id: str, site_group_id: int, member: str) -> None:
        """Add a login claim (or a user's UPN, turned into its claim) to a SharePoint site group."""
        with self.lock:
            site_group = self._site_group(site_id, site_group_id)
            self._bump()
            claim = member if "|" in member else USER_CLAIM + self.user(member).upn.lower()
            if claim not in site_group.member_claims:
                site_group.member_claims.append(claim)

    def remove_site_group_member(self: Tenant, site_id: str, site_group_id: int, member: str) -> None:
        """Remove a login claim (or a user's claim, by UPN) from a SharePoint site group."""
        with self.lock:
            site_group = self._site_group(site_id, site_group_id)
            self._bump()
            claim = member if "|" in member else USER_CLAIM + self.user(member).upn.lower()
            site_group.member_claims = [c for c in site_group.member_claims if c.lower() != claim.lower()]

    # --- pages ----------------------------------------------------------------------------------

    def add_page(
        self: Tenant,
        site_id: str,
        name: str,
        title: str,
        webparts: Sequence[str],
        *,
        grants: Sequence[GrantSpec] | None = None,
        page_id: str | None = None,
    ) -> Item:
        """Publish a new modern page (`name` like "news.aspx") with text web parts of HTML."""
        with self.lock:
            site = self.site(site_id)
            drive = self.pages_drive(site.id)
            self._bump()
            page_id = page_id or derived_guid(site.id, "page", name, str(self.sequence))
            parts = [(derived_guid(page_id, "webpart", str(n)), html) for n, html in enumerate(webparts)]
            node = self.create_node(
                self.root(drive.id), name, "page", rendered=render_page(title, list(webparts)),
                grants=self._grants(drive.id, grants),
            )  # fmt: skip
            node.page = PageContent(page_id=page_id, title=title, webparts=parts)
            node.guid = page_id  # a Site Pages item's listItemUniqueId is the sitePage id
            self.register_page(site, node)
            return self.snapshot(node)

    def edit_page(
        self: Tenant, site_id: str, page_id: str, html: str | Sequence[str], *, title: str | None = None
    ) -> Item:
        """Replace a page's web parts (one HTML string, or one per web part) and republish it."""
        with self.lock:
            node = self.page_node(site_id, page_id)
            assert node.page is not None
            seq = self._bump()
            new_parts = [html] if isinstance(html, str) else list(html)
            old_ids = [part_id for part_id, _ in node.page.webparts]
            node.page.webparts = [
                (old_ids[n] if n < len(old_ids) else derived_guid(page_id, "webpart", str(n), str(seq)), part)
                for n, part in enumerate(new_parts)
            ]
            node.page.title = title or node.page.title
            if self.set_rendered(node, render_page(node.page.title, new_parts)):
                node.content_version += 1
            self._touch(node, seq)
            return self.snapshot(node)

    def delete_page(self: Tenant, site_id: str, page_id: str) -> None:
        """Delete a page (its Site Pages item goes to the recycle bin)."""
        with self.lock:
            node = self.page_node(site_id, page_id)
            self.delete(node.drive_id, node.item_id)

    # --- helpers --------------------------------------------------------------------------------

    def _bump(self: Tenant) -> int:
        self.sequence += 1
        return self.sequence

    def _touch(self: Tenant, node: Node, seq: int, *, permissions: bool = False) -> None:
        node.change_seq = seq
        node.version += 1
        node.modified = self.mutation_time()
        if permissions:
            node.perm_seq = seq

    def _mark_inheritors(self: Tenant, node: Node, seq: int) -> None:
        """Stamp the descendants whose effective permissions just changed along with `node`."""
        for child in node.children:
            if child.grants is None and not child.deleted:
                child.change_seq = child.perm_seq = seq
                self._mark_inheritors(child, seq)

    def _live(self: Tenant, drive_id: str, item_id: str) -> Node:
        node = self.node(drive_id, item_id)
        if node.deleted:
            raise KeyError(f"{node.name} ({item_id}) is deleted")
        return node

    def _folder(self: Tenant, drive_id: str, folder_path: str, *, create: bool) -> Node:
        current = self.root(drive_id)
        for name in [part for part in folder_path.split("/") if part]:
            found = next((c for c in current.children if c.name == name and not c.deleted), None)
            if found is None:
                if not create:
                    raise KeyError(f"no folder {folder_path!r} in drive {drive_id}")
                found = self.create_node(current, name, "folder")
            elif not found.is_folder:
                raise ValueError(f"{name!r} in {folder_path!r} is a file, not a folder")
            current = found
        return current

    def _check_free(self: Tenant, parent: Node, name: str, moving: Node) -> None:
        for child in parent.children:
            if child is not moving and not child.deleted and child.name.lower() == name.lower():
                raise ValueError(f"an item named {name!r} already exists there")

    def _grants(self: Tenant, drive_id: str, grants: Sequence[GrantSpec] | None) -> list[Grant] | None:
        if grants is None:
            return None
        from sandbox.loader import parse_grant

        site = self.site_of_drive(drive_id)
        return [
            g if isinstance(g, Grant) else parse_grant(self, site, g, f"{drive_id}/{self.sequence}/{n}")
            for n, g in enumerate(grants)
        ]

    def _author(self: Tenant, author: str | None) -> str | None:
        return self.user(author).id if author else None

    def _member(self: Tenant, member: str) -> tuple[str, str]:
        try:
            return "user", self.user(member).id
        except KeyError:
            return "group", self.group(member).id

    def _site_group(self: Tenant, site_id: str, site_group_id: int) -> SiteGroup:
        site_group = self.site(site_id).site_group(site_group_id)
        if site_group is None:
            raise KeyError(f"site {site_id} has no site group {site_group_id}")
        return site_group
