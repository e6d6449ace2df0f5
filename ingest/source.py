"""SharePoint semantics: sites -> libraries (Site Pages included) -> delta -> typed changes.

`changes(drive, cursor)` is the only way content enters spindex: a full sync is simply
`changes(drive, None)`. Graph's delta feed gives each item's latest state, without folder
paths; this module turns it into `ChangeBatch`es of `SourceItem`s with their paths resolved.
"""

from __future__ import annotations

import html
import mimetypes
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ingest.concurrency import in_order
from ingest.config import GraphSettings
from ingest.errors import ItemUnavailable
from ingest.graph.client import GraphClient
from ingest.graph.drive_items import DriveEntry
from ingest.models import DriveRef, IndexedItem, ItemRef, SiteRef, SourceItem

ManifestFn = Callable[[list[ItemRef]], Awaitable[Mapping[ItemRef, IndexedItem]]]

SITE_PAGES_DRIVE_NAMES = frozenset({"Site Pages", "SitePages"})
SITES_AT_ONCE = 8  # sites whose libraries are listed at once when a run starts


@dataclass(frozen=True, slots=True)
class FolderState:
    """A folder's latest path, ancestor chain (root excluded, the folder itself last) and URL."""

    path: str
    chain: tuple[str, ...]
    web_url: str


@dataclass(slots=True)
class ChangeBatch:
    """The changes of one delta page, and the cursor to resume from once they are committed.

    `upserts` are files and pages in their latest state (new, edited, renamed, moved, or with
    new permissions: the pipeline tells which by comparing with the index). `deletes` are
    items Graph reports deleted. `folders` are the folders seen on this page in their latest
    state, which the pipeline needs when a folder is renamed or moved (Graph does not list
    the folder's descendants then).
    """

    drive: DriveRef
    upserts: list[SourceItem] = field(default_factory=list)
    deletes: list[ItemRef] = field(default_factory=list)
    folders: dict[str, FolderState] = field(default_factory=dict)
    deleted_folders: list[str] = field(default_factory=list)
    cursor_after: str | None = None
    final: bool = False
    manifest: Mapping[ItemRef, IndexedItem] | None = None  # what the index holds for `upserts`


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _page_html(page: Any) -> bytes:
    """A site page as one HTML document: its title, then each text web part in layout order."""
    parts = [f"<html><head><title>{html.escape(page.title or page.name or '')}</title></head><body>"]
    if page.title:
        parts.append(f"<h1>{html.escape(page.title)}</h1>")
    layout = getattr(page, "canvas_layout", None)
    for section in getattr(layout, "horizontal_sections", None) or []:
        for column in getattr(section, "columns", None) or []:
            for webpart in getattr(column, "webparts", None) or []:
                inner = getattr(webpart, "inner_html", None)
                if inner:
                    parts.append(f"<div>{inner}</div>")
    vertical = getattr(layout, "vertical_section", None)
    for webpart in getattr(vertical, "webparts", None) or []:
        inner = getattr(webpart, "inner_html", None)
        if inner:
            parts.append(f"<div>{inner}</div>")
    parts.append("</body></html>")
    return "".join(parts).encode("utf-8")


class FolderPaths:
    """Folder id -> (path, ancestor ids) inside one library: from the feed, else asked of Graph.

    Delta does not return `parentReference.path`, and a renamed folder does not bring its
    children, so items are tracked by id and their paths derived from the folder chain.
    """

    def __init__(self, graph: GraphClient, drive_id: str) -> None:
        self._graph = graph
        self._drive_id = drive_id
        self._folders: dict[str, tuple[str, str | None]] = {}  # id -> (name, parent id)
        self._chains: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._inherits: dict[str, bool] = {}  # from delta pages asked with hierarchicalsharing only
        self.root_id: str | None = None

    def learn(
        self, item_id: str, name: str, parent_id: str | None, *, is_root: bool = False, inherits: bool | None = None
    ) -> None:
        """Record a folder seen in the feed (its latest name and parent, and whether it inherits)."""
        if is_root:
            self.root_id = item_id
        else:
            self._folders[item_id] = (name, parent_id)
        if inherits is None:
            self._inherits.pop(item_id, None)
        else:
            self._inherits[item_id] = inherits
        self._chains.clear()  # a rename or move may change any cached descendant chain

    def seed(self, ancestor_ids: tuple[str, ...], path: str) -> None:
        """Learn folders from an indexed item's chain and folder path, where the feed did not
        name them.

        The index holds each item's folder chain as of its last commit (renames and moves are
        carried to descendants), so a delta need not ask Graph for the folders above an
        edited file. A folder the feed names always wins over what is seeded.
        """
        segments = [s for s in path.split("/") if s]
        if len(segments) != len(ancestor_ids):
            return  # not a path this chain made: learn nothing from it
        parent: str | None = None
        for name, folder_id in zip(segments, ancestor_ids, strict=False):
            if folder_id not in self._folders:
                self._folders[folder_id] = (name, parent)
            parent = folder_id

    def inherits(self, folder_id: str) -> bool | None:
        """True if the feed showed the folder inheriting its parent's permissions, False if
        unique, None when unknown."""
        return self._inherits.get(folder_id)

    async def chain(self, folder_id: str | None) -> tuple[str, tuple[str, ...]]:
        """The folder's path ("/" for the root) and its ids from the root down (root excluded)."""
        if folder_id is None or folder_id == self.root_id:
            return "/", ()
        cached = self._chains.get(folder_id)
        if cached is not None:
            return cached
        known = self._folders.get(folder_id)
        if known is None:
            item = await self._graph.item(self._drive_id, folder_id)
            if item.is_root:
                self.root_id = folder_id
                return "/", ()
            known = (item.name or folder_id, item.parent_id)
            self._folders[folder_id] = known
        name, parent = known
        parent_path, parent_ids = await self.chain(parent)
        result = (parent_path.rstrip("/") + "/" + name, parent_ids + (folder_id,))
        self._chains[folder_id] = result
        return result

    async def path_of(self, folder_id: str | None) -> str:
        """The path of a folder, "/" for the library root."""
        return (await self.chain(folder_id))[0]


class SharePointSource:
    """Sites, libraries and their delta feeds, as spindex's typed values."""

    def __init__(self, graph: GraphClient, settings: GraphSettings) -> None:
        self.graph = graph
        self.settings = settings
        self._page_titles: dict[str, dict[str, str]] = {}
        self._folders: dict[str, FolderPaths] = {}
        # drive id -> item id -> pre-authenticated download URL, for the current page only:
        # the URLs lapse within minutes, and keeping older pages' would grow with the corpus.
        self._download_urls: dict[str, dict[str, str]] = {}

    def folder_inherits(self, drive: DriveRef, folder_id: str) -> bool | None:
        """Whether a folder of the library inherits its parent's permissions (None: unknown)."""
        return self._folder_paths(drive).inherits(folder_id)

    def _folder_paths(self, drive: DriveRef) -> FolderPaths:
        if drive.drive_id not in self._folders:
            self._folders[drive.drive_id] = FolderPaths(self.graph, drive.drive_id)
        return self._folders[drive.drive_id]

    async def sites(self) -> list[SiteRef]:
        """The configured sites, or every site of the tenant when none is configured."""
        if self.settings.sites:
            found = await in_order([self.graph.site(s) for s in self.settings.sites], limit=SITES_AT_ONCE)
        else:
            found = [s async for s in self.graph.all_sites()]
        return [SiteRef(s.id, s.display_name or s.name or s.id, s.web_url or "") for s in found]

    async def drives(self) -> list[DriveRef]:
        """Every document library of the sites, and their Site Pages libraries if enabled."""
        sites = await self.sites()
        listed = await in_order(
            [self.graph.drives(site.site_id, include_system=self.settings.include_pages) for site in sites],
            limit=SITES_AT_ONCE,
        )
        drives: list[DriveRef] = []
        for site, site_drives in zip(sites, listed, strict=True):
            for drive in site_drives:
                is_pages = drive.name in SITE_PAGES_DRIVE_NAMES or (drive.web_url or "").rstrip("/").endswith("/SitePages")
                if is_pages and not self.settings.include_pages:
                    continue
                if drive.system is not None and not is_pages:
                    continue  # other hidden libraries (Style Library, Form Templates...) hold no content
                drives.append(DriveRef(site, drive.id, drive.name or drive.id, drive.web_url or "", "pages" if is_pages else "documents"))
        return drives

    async def changes(
        self, drive: DriveRef, cursor: str | None, manifest: ManifestFn | None = None
    ) -> AsyncIterator[ChangeBatch]:
        """The drive's changes since `cursor` (everything when None), one batch per delta page.

        With `manifest` (what the index holds for some items), each batch carries it for its
        upserts, and the folders above indexed items are learned from it, not asked of Graph.
        """
        folders = self._folder_paths(drive)
        link = cursor
        while True:
            page = await self.graph.delta_page(drive.drive_id, link, top=self.settings.page_size)
            self._download_urls[drive.drive_id] = {}
            batch = ChangeBatch(drive=drive)
            latest: dict[str, DriveEntry] = {}
            for raw in page.items:  # an item may appear more than once: its last state wins
                if raw.id:
                    latest.pop(raw.id, None)
                    latest[raw.id] = raw
            for raw in latest.values():
                if raw.is_root:
                    folders.learn(raw.id, "", None, is_root=True)
            for raw in latest.values():
                if raw.is_folder and not raw.is_root and not raw.deleted:
                    folders.learn(raw.id, raw.name or "", raw.parent_id, inherits=_inherits(raw, page.hierarchical))
            if manifest is not None:
                refs = [
                    ItemRef(drive.drive_id, raw.id)
                    for raw in latest.values()
                    if not (raw.is_root or raw.deleted or raw.is_folder)
                ]
                batch.manifest = await manifest(refs) if refs else {}
                for indexed in batch.manifest.values():
                    folders.seed(indexed.ancestor_ids, indexed.path)
            for raw in latest.values():
                if raw.is_root:
                    continue
                ref = ItemRef(drive.drive_id, raw.id)
                if raw.deleted:
                    batch.deletes.append(ref)
                    if raw.is_folder:
                        batch.deleted_folders.append(raw.id)
                    continue
                if raw.is_folder:
                    batch.folders[raw.id] = FolderState(*(await folders.chain(raw.id)), web_url=raw.web_url or "")
                    continue
                item = await self._source_item(drive, raw, folders)
                if item is not None:
                    item.inherits = _inherits(raw, page.hierarchical)
                    batch.upserts.append(item)
            batch.cursor_after = page.delta_link or page.next_link
            batch.final = page.delta_link is not None
            yield batch
            if page.delta_link is not None or page.next_link is None:
                return
            link = page.next_link

    async def item(self, drive: DriveRef, item_id: str) -> SourceItem | None:
        """One file or page by id in its latest state; None if it is gone or not indexable."""
        raw = await self.graph.item(drive.drive_id, item_id)
        if raw.deleted or raw.is_folder or raw.is_root:
            return None
        return await self._source_item(drive, raw, self._folder_paths(drive))

    async def exists(self, drive: DriveRef, item_id: str) -> bool:
        """Whether the library still has the item (a 404 means it does not)."""
        try:
            raw = await self.graph.item(drive.drive_id, item_id)
        except ItemUnavailable:
            return False
        return not raw.deleted

    async def _source_item(self, drive: DriveRef, raw: DriveEntry, folders: FolderPaths) -> SourceItem | None:
        path, ancestors = await folders.chain(raw.parent_id)
        name = raw.name or raw.id
        mime = raw.mime_type if raw.is_file and raw.mime_type else mimetypes.guess_type(name)[0]
        if raw.download_url and drive.kind != "pages":
            self._download_urls.setdefault(drive.drive_id, {})[raw.id] = raw.download_url
        item = SourceItem(
            ref=ItemRef(drive.drive_id, raw.id),
            drive=drive,
            kind="file",
            name=name,
            title=name,
            web_url=raw.web_url or "",
            path=path,
            mime_type=mime,
            size=raw.size,
            ctag=raw.ctag,
            etag=raw.etag,
            last_modified=_iso(raw.last_modified),
            shared_changed=raw.shared_changed,
            ancestor_ids=ancestors,
        )
        if drive.kind == "pages":
            if not name.lower().endswith(".aspx"):
                return None  # images and assets stored beside pages are not pages
            page_id = raw.list_item_unique_id
            if not page_id:
                return None
            titles = await self._titles(drive.site.site_id)
            item.kind = "page"
            item.page_id = page_id
            item.title = titles.get(page_id) or name.removesuffix(".aspx")
            item.mime_type = "text/html"
        return item

    async def _titles(self, site_id: str) -> dict[str, str]:
        if site_id not in self._page_titles:
            self._page_titles[site_id] = await self.graph.site_page_titles(site_id)
        return self._page_titles[site_id]

    async def fetch(self, item: SourceItem) -> bytes:
        """The item's content: a file's bytes, or a page assembled as HTML from its web parts."""
        if item.kind == "page":
            assert item.page_id is not None
            page = await self.graph.site_page(item.drive.site.site_id, item.page_id)
            return _page_html(page)
        url = self._download_urls.get(item.ref.drive_id, {}).pop(item.ref.item_id, None)
        return await self.graph.download(item.ref.drive_id, item.ref.item_id, url=url)

    async def permissions_of(self, drive: DriveRef, item_id: str) -> list[Any]:
        """The effective permissions of any item of a library as Graph returns them: files,
        pages (via their Site Pages items), folders and "root" (the library)."""
        return await self.graph.permissions(drive.drive_id, item_id)


def _inherits(raw: DriveEntry, hierarchical: bool) -> bool | None:
    """Under `Prefer: hierarchicalsharing`, an item without a `shared` facet inherits its
    parent's permissions; without that header the facet says nothing about inheritance."""
    if not hierarchical:
        return None
    return not raw.shared
