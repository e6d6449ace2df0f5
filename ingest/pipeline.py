"""The one code path for full and delta syncs, and the commit rule.

For each library: hold its lease, load its cursor (none, or a full run, means enumerate it
all), then for each `ChangeBatch` from the source: classify each item against the index
manifest, take its cheapest path (`item_sync.py`), write to the index, and only then save the
cursor after that batch. A crash anywhere leaves the cursor at the last fully written batch;
a rerun redoes at most that batch, and every write is idempotent (deterministic keys, upsert
then prune), so the index ends as if nothing had crashed.

A whole enumeration ends with a reconcile: indexed items the library no longer has are
removed. An enumeration resumed after a crash has not seen its first pages, so before
removing an unseen item it asks Graph whether the item still exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ingest.acl import SiteGroupResolver
from ingest.acl_scopes import AclTable
from ingest.chunking import Chunker
from ingest.concurrency import at_once
from ingest.config import Settings
from ingest.embedding import Embedder
from ingest.errors import (
    BadInput,
    ItemError,
    ItemUnavailable,
    MassDeleteRefused,
    ResyncRequired,
    RunStopped,
)
from ingest.extraction_pool import ExtractionPool
from ingest.faults import crash_point
from ingest.index.base import IndexStore
from ingest.item_sync import ItemSync
from ingest.models import Acl, DriveRef, IndexedItem, ItemRef, SourceItem
from ingest.report import ItemProblem, RunReport
from ingest.source import ChangeBatch, FolderState, SharePointSource
from ingest.staging import Staging
from ingest.state.base import MAX_KNOWN_BAD, MAX_PENDING_RETRIES, DriveCursor, KnownBad, LeaseHeld, StateStore

ProgressFn = Callable[[str, DriveRef | None, int], None]
@dataclass
class DriveRun:
    """What one run knows about one library while it syncs it."""

    drive: DriveRef
    etag: str | None
    enumerating: bool
    resumed: bool
    indexed_at_start: int
    known_bad: dict[str, KnownBad]
    pending: set[str]
    acls: AclTable = field(default_factory=AclTable)
    seen: set[str] = field(default_factory=set)
    deleted: int = 0


class Pipeline:
    """Moves changes from SharePoint into one index, library by library."""

    def __init__(
        self,
        *,
        settings: Settings,
        source: SharePointSource,
        index: IndexStore,
        embedder: Embedder,
        chunker: Chunker,
        state: StateStore,
        report: RunReport,
        site_groups: SiteGroupResolver | None = None,
        progress: ProgressFn | None = None,
        allow_mass_delete: bool = False,
        reuse_from: IndexStore | None = None,
        extraction: ExtractionPool,
        staging: Staging | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.index = index
        self.state = state
        self.report = report
        self.allow_mass_delete = allow_mass_delete
        self.progress = progress or (lambda event, drive, n: None)
        self.items = ItemSync(
            settings=settings, source=source, index=index, embedder=embedder, chunker=chunker,
            report=report, site_groups=site_groups, reuse_from=reuse_from, staging=staging,
            extraction=extraction,
        )
        self.staging = staging
        self.stop = stop  # set by the scheduler on SIGTERM: finish the batch, commit, stop
        self._limit = asyncio.Semaphore(settings.sync.concurrency)

    async def run(self, *, full: bool) -> RunReport:
        """Sync every configured library; raises SystemicError to abort the run.

        Up to `sync.libraries_at_once` libraries sync at once, sharing `sync.concurrency`, so
        that one library's page boundaries (and small libraries' round trips) leave no idle time.
        """
        drives = await self.source.drives()
        self.progress("drives", None, len(drives))
        stopped: list[RunStopped] = []

        async def library(drive: DriveRef) -> None:
            self.report.library_names[drive.drive_id] = f"{drive.site.name} / {drive.name}"
            try:
                self._check_stop()
                async with self.state.lease(drive.state_key(self.index.name)):
                    await self.sync_drive(drive, full=full)
            except LeaseHeld:
                # Another run (a long full run, another replica) has this library: leave it be.
                self.report.leased.append(drive.drive_id)
            except RunStopped as exc:  # the other libraries finish their batch too
                stopped.append(exc)

        await at_once(drives, library, asyncio.Semaphore(self.settings.sync.libraries_at_once))
        if stopped:
            raise stopped[0]
        return self.report

    async def sync_drive(self, drive: DriveRef, *, full: bool) -> None:
        """Bring one library's index documents in step with SharePoint, committing per batch."""
        stored = await self.state.load(drive.state_key(self.index.name))
        cursor, etag = stored if stored is not None else (None, None)
        fresh = full or cursor is None or cursor.link is None
        run = DriveRun(
            drive=drive,
            etag=etag,
            enumerating=fresh or bool(cursor and cursor.enumerating),
            resumed=not fresh and bool(cursor and cursor.enumerating),
            indexed_at_start=len(await self.index.drive_items(drive.drive_id)),
            known_bad=dict(cursor.bad_content) if cursor else {},
            pending=set(cursor.pending_retry) if cursor else set(),
            acls=AclTable(cursor.acls if cursor else None),
        )
        self.report.count(drive.drive_id, "created", 0)
        if run.pending and not fresh:
            await self._retry_pending(run)
        try:
            await self._follow(run, None if fresh else cursor.link if cursor else None)
        except ResyncRequired as exc:
            self.report.resyncs.append({"drive_id": drive.drive_id, "reason": str(exc)})
            run.enumerating, run.resumed, run.seen = True, False, set()
            await self._follow(run, None)

    async def _follow(self, run: DriveRun, link: str | None) -> None:
        async for batch in self.source.changes(run.drive, link, self.index.indexed_state):
            self.items.scopes.clear(run.drive.drive_id)  # read afresh for each page: its items' latest state
            await self.apply(batch, run)
            if run.enumerating:
                run.seen.update(item.ref.item_id for item in batch.upserts)
                if batch.final:
                    await self._reconcile(run)
            await self._commit(run, batch)
            self._check_stop()

    def _check_stop(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise RunStopped("stopped on request after the last committed batch")

    async def _commit(self, run: DriveRun, batch: ChangeBatch) -> None:
        crash_point("commit")
        if len(run.known_bad) > MAX_KNOWN_BAD:
            run.known_bad = dict(list(run.known_bad.items())[-MAX_KNOWN_BAD:])
        cursor = DriveCursor(
            drive_id=run.drive.drive_id,
            link=batch.cursor_after,
            caught_up=batch.final,
            enumerating=run.enumerating and not batch.final,
            pending_retry=sorted(run.pending)[:MAX_PENDING_RETRIES],
            bad_content=run.known_bad,
            acls=run.acls.entries(),
        )
        run.etag = await self.state.save(run.drive.state_key(self.index.name), cursor, if_match=run.etag)
        crash_point("committed")

    # -- deletes and their guard ------------------------------------------------------------

    def _guard(self, run: DriveRun, more: int) -> None:
        """Stop before deleting more of a library than the configured share allows."""
        total = run.deleted + more
        share = self.settings.sync.mass_delete_share
        if (
            not self.allow_mass_delete
            and total >= self.settings.sync.mass_delete_min_items
            and total > share * run.indexed_at_start
        ):
            raise MassDeleteRefused(
                f"{run.drive.site.name} / {run.drive.name}: this run would delete {total} of "
                f"{run.indexed_at_start} indexed items (more than {share:.0%}); nothing was deleted "
                "from this batch. If the library really lost them, rerun with --allow-mass-delete"
            )

    async def _delete(self, run: DriveRun, refs: Sequence[ItemRef]) -> None:
        indexed = await self.index.indexed_state(list(refs))
        present = [ref for ref in refs if ref in indexed]
        self._guard(run, len(present))
        for ref in present:
            await self.index.delete_item(ref)
        for ref in refs:
            run.known_bad.pop(ref.item_id, None)
            run.pending.discard(ref.item_id)
            if self.staging is not None:
                await self.staging.delete(ref)
        run.deleted += len(present)
        self.report.count(run.drive.drive_id, "deleted", len(present))
        self.report.index["items_deleted"] += len(present)

    async def _reconcile(self, run: DriveRun) -> None:
        """After a whole enumeration: remove indexed items the library no longer has."""
        unseen = sorted(ref for ref in await self.index.drive_items(run.drive.drive_id) if ref.item_id not in run.seen)
        if run.resumed:  # the first pages were seen by the crashed run: ask Graph
            unseen = [ref for ref in unseen if not await self.source.exists(run.drive, ref.item_id)]
        if unseen:
            await self._delete(run, unseen)

    # -- batches ----------------------------------------------------------------------------

    async def apply(self, batch: ChangeBatch, run: DriveRun) -> None:
        """Write one batch's changes to the index; raises if anything systemic failed."""
        manifest = batch.manifest
        if manifest is None:
            manifest = await self.index.indexed_state([item.ref for item in batch.upserts])
        await at_once(batch.upserts, lambda item: self._one(run, item, manifest.get(item.ref)), self._limit)
        upserted = {item.ref.item_id for item in batch.upserts}
        for folder_id, folder in batch.folders.items():
            await self._folder_changed(run, folder_id, folder, upserted)
        doomed = set(batch.deletes)
        for folder_id in batch.deleted_folders:  # Graph may list only the folder itself
            doomed |= await self.index.items_under(run.drive.drive_id, folder_id)
        if doomed:
            await self._delete(run, sorted(doomed))
        self.progress("batch", batch.drive, len(batch.upserts) + len(batch.deletes))

    async def _one(self, run: DriveRun, item: SourceItem, indexed: IndexedItem | None) -> None:
        """Process one item; a per-item failure is recorded and the run goes on."""
        stage = "list"
        acl: Acl | None = None
        try:
            self.items.precheck(item, run.known_bad)
            stage = "permissions"
            acl = await self.items.acl(item, indexed, table=run.acls, keep=not run.enumerating)
            stage = "content"
            outcome = await self.items.apply(item, indexed, acl)
        except BadInput as exc:
            await self._drop(item, indexed)
            if stage != "list" and item.ctag is not None:
                run.known_bad[item.ref.item_id] = KnownBad(ctag=item.ctag, reason=exc.reason, message=str(exc))
            self.report.skip(self._problem(item, "list" if stage == "list" else "extract", exc))
            return
        except ItemError as exc:
            if stage == "permissions":
                await self.items.lock(item, indexed)  # fail closed: unknown readers, not searchable
            elif indexed is not None:
                # The new content could not be fetched: keep the old chunks, with today's readers.
                await self.items.merge_changes(item, indexed, acl)
            run.pending.add(item.ref.item_id)
            self.report.fail(self._problem(item, "permissions" if stage == "permissions" else "download", exc))
            return
        run.known_bad.pop(item.ref.item_id, None)
        run.pending.discard(item.ref.item_id)
        self.report.count(item.ref.drive_id, outcome.kind)

    @staticmethod
    def _problem(item: SourceItem, stage: str, exc: ItemError) -> ItemProblem:
        return ItemProblem(item.ref.drive_id, item.ref.item_id, item.name, item.path, stage, exc.reason, str(exc))

    async def _drop(self, item: SourceItem, indexed: IndexedItem | None) -> None:
        if indexed is not None:
            await self.index.delete_item(item.ref)
            self.report.index["items_deleted"] += 1

    async def _retry_pending(self, run: DriveRun) -> None:
        """Items that failed in an earlier run: fetch them again by id and process them."""
        for item_id in sorted(run.pending):
            try:
                item = await self.source.item(run.drive, item_id)
            except ItemUnavailable:
                item = None
            if item is None:
                await self._delete(run, [ItemRef(run.drive.drive_id, item_id)])
                continue
            indexed = (await self.index.indexed_state([item.ref])).get(item.ref)
            await self._one(run, item, indexed)

    # -- folders ----------------------------------------------------------------------------

    async def _folder_changed(self, run: DriveRun, folder_id: str, folder: FolderState, upserted: set[str]) -> None:
        """A folder renamed or moved: its descendants' paths, URLs (and, if moved, ACLs) follow."""
        refs = [r for r in await self.index.items_under(run.drive.drive_id, folder_id) if r.item_id not in upserted]
        if not refs:
            return
        manifest = await self.index.indexed_state(refs)
        moves: list[tuple[SourceItem, IndexedItem, bool]] = []
        for ref, indexed in manifest.items():
            old = list(indexed.ancestor_ids)
            if folder_id not in old:
                continue
            at = old.index(folder_id)
            below = old[at + 1 :]
            segments = [s for s in indexed.path.split("/") if s]
            tail = segments[len(segments) - len(below):] if below else []
            new_path = folder.path.rstrip("/") + ("/" + "/".join(tail) if tail else "")
            keep = len(below) + 1  # the folders below, then the file name
            new_url = folder.web_url.rstrip("/") + "/" + "/".join(indexed.url.split("/")[-keep:])
            moved = tuple(old[:at]) != folder.chain[:-1]
            item = SourceItem(
                ref=ref, drive=run.drive, kind="file", name=indexed.title, title=indexed.title,
                web_url=new_url, path=new_path, ctag=indexed.content_tag, last_modified=indexed.last_modified,
                ancestor_ids=folder.chain + tuple(below),
            )
            moves.append((item, indexed, moved))

        async def follow(entry: tuple[SourceItem, IndexedItem, bool]) -> None:
            item, indexed, moved = entry
            try:
                # a move can change what is inherited
                acl = await self.items.acl(item, table=run.acls) if moved else None
                outcome = await self.items.merge_changes(item, indexed, acl)
            except ItemError as exc:
                await self.items.lock(item, indexed)
                run.pending.add(item.ref.item_id)
                self.report.fail(self._problem(item, "permissions", exc))
                return
            self.report.count(run.drive.drive_id, outcome.kind)

        by_id = {entry[0].ref.item_id: entry for entry in moves}
        await at_once([entry[0] for entry in moves], lambda item: follow(by_id[item.ref.item_id]), self._limit)
