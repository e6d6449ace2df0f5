"""`spindex run acl`: re-read every indexed item's permissions and merge only what changed.

Graph flags an item whose own sharing changed (`sharedChanged` in delta) but not the items
that inherit from a folder whose sharing changed, nor changes of group or site-group
membership that alter who a site group stands for. The sweep closes that gap: permissions in
`$batch` requests of 20 (every sub-response checked), site groups resolved afresh, the Acl
compared with the `acl_hash` stored on the item's chunks, and a merge of `group_ids` /
`user_ids` only where it differs. It never downloads and never embeds.
"""

from __future__ import annotations

from ingest.acl import SiteGroupResolver, permissions_to_acl
from ingest.config import Settings
from ingest.errors import ItemError, SpindexError
from ingest.graph.client import GRAPH_BATCH_MAX
from ingest.index.base import IndexStore
from ingest.item_sync import UNREADABLE_ACL_HASH
from ingest.models import DriveRef, ItemRef
from ingest.report import ItemProblem, RunReport
from ingest.source import SharePointSource
from ingest.state.base import DriveCursor, LeaseHeld, StateStore


class AclSweep:
    """Brings every indexed item's `group_ids`/`user_ids` in step with SharePoint."""

    def __init__(
        self,
        *,
        settings: Settings,
        source: SharePointSource,
        index: IndexStore,
        state: StateStore,
        report: RunReport,
        site_groups: SiteGroupResolver | None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.index = index
        self.state = state
        self.report = report
        self.site_groups = site_groups

    async def run(self) -> RunReport:
        """Sweep every library (skipping one another run holds)."""
        for drive in await self.source.drives():
            self.report.library_names[drive.drive_id] = f"{drive.site.name} / {drive.name}"
            self.report.count(drive.drive_id, "acl_only", 0)
            try:
                async with self.state.lease(drive.state_key(self.index.name)):
                    await self.sweep(drive)
            except LeaseHeld:
                self.report.leased.append(drive.drive_id)
        return self.report

    async def sweep(self, drive: DriveRef) -> None:
        """Re-read the permissions of every indexed item of one library."""
        refs = sorted(await self.index.drive_items(drive.drive_id))
        failed: list[str] = []
        for start in range(0, len(refs), GRAPH_BATCH_MAX):
            part = refs[start : start + GRAPH_BATCH_MAX]
            manifest = await self.index.indexed_state(part)
            answers = await self.source.graph.batch_permissions(drive.drive_id, [r.item_id for r in part])
            for ref in part:
                indexed = manifest.get(ref)
                if indexed is None:
                    continue
                answer = answers[ref.item_id]
                try:
                    if isinstance(answer, SpindexError):
                        raise answer
                    result = await permissions_to_acl(
                        answer, site=drive.site, policy=self.settings.acl, site_groups=self.site_groups
                    )
                except ItemError as exc:
                    await self._lock(ref, indexed.acl_hash)
                    failed.append(ref.item_id)
                    self.report.fail(ItemProblem(ref.drive_id, ref.item_id, indexed.title, indexed.path, "permissions", exc.reason, str(exc)))
                    continue
                acl = result.acl
                if result.unresolved:
                    self.report.unresolved_grants[ref.item_id] = sorted(set(result.unresolved))
                if acl.acl_hash == indexed.acl_hash:
                    self.report.count(drive.drive_id, "unchanged")
                    continue
                await self.index.merge(
                    ref, {"group_ids": sorted(acl.group_ids), "user_ids": sorted(acl.user_ids), "acl_hash": acl.acl_hash}
                )
                self.report.index["items_merged"] += 1
                self.report.count(drive.drive_id, "acl_only")
        if failed:
            await self._remember(drive, failed)

    async def _lock(self, ref: ItemRef, current_hash: str) -> None:
        if current_hash != UNREADABLE_ACL_HASH:
            await self.index.merge(ref, {"group_ids": [], "user_ids": [], "acl_hash": UNREADABLE_ACL_HASH})
            self.report.index["items_locked"] += 1

    async def _remember(self, drive: DriveRef, item_ids: list[str]) -> None:
        """Add failed items to the library's retry list, so the next delta run tries them again."""
        stored = await self.state.load(drive.state_key(self.index.name))
        if stored is None:
            cursor, etag = DriveCursor(drive_id=drive.drive_id), None
        else:
            cursor, etag = stored
        cursor.pending_retry = sorted(set(cursor.pending_retry) | set(item_ids))
        await self.state.save(drive.state_key(self.index.name), cursor, if_match=etag)
