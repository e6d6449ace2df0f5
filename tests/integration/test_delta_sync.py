"""A delta run after any change makes the index equal to a full sync of the changed tenant.

Defends (DESIGN invariants 1, 2 and 4): for each kind of change SharePoint users make (create,
edit, rename, move, delete and restore of files and folders; edit, add and delete of pages;
a permission change), one `run delta` leaves exactly the documents a fresh full sync of the
mutated tenant produces. Renames and moves cost no download and no embedding; editing one
paragraph of a long document re-embeds only the chunks whose text changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ingest.models import ItemRef
from ingest.report import RunReport
from sandbox.server import SandboxServer
from sandbox.tenant import Tenant, load_tenant
from tests.fakes.embeddings_server import FakeEmbeddingsServer
from tests.integration.conftest import EMBEDDING_DIMENSIONS, EMBEDDING_KEY, index_documents, spindex_settings, sync

SAMPLES = Path(__file__).resolve().parents[2] / "sandbox" / "samples"


@dataclass
class Live:
    tenant: Tenant
    server: SandboxServer
    embeddings: FakeEmbeddingsServer
    data: Path
    tmp: Path

    def settings(self, data: Path | None = None):  # noqa: ANN201 - Settings
        return spindex_settings(self.server, self.tenant, data or self.data, self.embeddings, graph={"page_size": 7})

    def delta(self) -> RunReport:
        self.server.stats.reset()
        self.embeddings_before = self.embeddings.inputs
        report = sync(self.settings(), full=False)
        assert report.status == "ok", report.as_dict()
        return report

    def assert_equals_fresh_full_sync(self) -> None:
        fresh = self.tmp / f"fresh-{len(list(self.tmp.iterdir()))}"
        report = sync(self.settings(fresh), full=True)
        assert report.status == "ok"
        assert index_documents(self.settings()) == index_documents(self.settings(fresh))

    @property
    def downloads(self) -> int:
        return self.server.stats.snapshot()["downloads"]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    tenant = load_tenant("demo")
    with SandboxServer(tenant) as server, FakeEmbeddingsServer(dimensions=EMBEDDING_DIMENSIONS, keys=(EMBEDDING_KEY,)) as embeddings:
        state = Live(tenant, server, embeddings, tmp_path / "live", tmp_path)
        first = sync(state.settings(), full=False)  # no cursor yet: a full enumeration
        assert first.status == "ok" and first.totals()["created"] >= 35
        yield state


def _item(tenant: Tenant, name: str):  # noqa: ANN202 - sandbox Item
    return tenant.find_item(name)


def _folder(tenant: Tenant, name: str, drive_id: str | None = None):  # noqa: ANN202
    return next(
        i for i in tenant.items(include_folders=True)
        if i.kind == "folder" and i.name == name and drive_id in (None, i.drive_id)
    )


def _delete_and_restore(tenant: Tenant, name: str) -> None:
    item = next(i for i in tenant.items(include_folders=True) if i.name == name)
    tenant.delete(item.drive_id, item.item_id)
    tenant.restore(item.drive_id, item.item_id)


MUTATIONS: dict[str, Callable[[Tenant], None]] = {
    "create file": lambda t: t.add_file(
        _item(t, "Leave and Holiday Policy.docx").drive_id, "/Policies", "Bike Scheme.md",
        "# Bike scheme\nEmployees may lease a bicycle through salary sacrifice of up to 1,000 euros.",
    ),
    "edit content": lambda t: t.update_content(
        _item(t, "Leave and Holiday Policy.docx").drive_id, _item(t, "Leave and Holiday Policy.docx").item_id,
        "# Leave\nEvery employee has 30 days of paid leave per year, and the leave year starts in April.",
    ),
    "rename file": lambda t: t.rename(
        _item(t, "RX-200 Arm Specification.pdf").drive_id, _item(t, "RX-200 Arm Specification.pdf").item_id,
        "RX-200 Arm Specification v2.pdf",
    ),
    "move file": lambda t: t.move(
        _item(t, "RX-200 Arm Specification.pdf").drive_id, _item(t, "RX-200 Arm Specification.pdf").item_id,
        _folder(t, "Reports", _item(t, "RX-200 Arm Specification.pdf").drive_id).item_id,
    ),
    "delete file": lambda t: t.delete(_item(t, "Q3 2025 Board Pack.pdf").drive_id, _item(t, "Q3 2025 Board Pack.pdf").item_id),
    "restore file": lambda t: _delete_and_restore(t, "Q3 2025 Board Pack.pdf"),
    "restore folder": lambda t: _delete_and_restore(t, "Employee Relations"),
    "rename folder": lambda t: t.rename(_folder(t, "Specifications").drive_id, _folder(t, "Specifications").item_id, "Specs"),
    "move folder": lambda t: t.move(
        _folder(t, "Specifications").drive_id, _folder(t, "Specifications").item_id,
        _folder(t, "Reports", _folder(t, "Specifications").drive_id).item_id,
    ),
    "delete folder": lambda t: t.delete(_folder(t, "Employee Relations").drive_id, _folder(t, "Employee Relations").item_id),
    "edit page": lambda t: t.edit_page(
        _item(t, "Home.aspx").site_id, _item(t, "Home.aspx").page_id,
        "<p>The canteen now opens at 7:30 and serves breakfast until 10:00.</p>",
    ),
    "delete page": lambda t: t.delete_page(_item(t, "Home.aspx").site_id, _item(t, "Home.aspx").page_id),
    "change permissions": lambda t: t.set_permissions(
        _folder(t, "Specifications").drive_id, _folder(t, "Specifications").item_id,
        [{"user": "erik.johansson@northwindrobotics.example", "role": "read"}],
    ),
}


@pytest.mark.parametrize("kind", sorted(MUTATIONS))
def test_one_delta_run_equals_a_full_sync_after(live: Live, kind: str) -> None:
    MUTATIONS[kind](live.tenant)
    report = live.delta()
    assert sum(report.totals()[k] for k in ("created", "content_changed", "metadata_only", "acl_only", "deleted")) > 0
    live.assert_equals_fresh_full_sync()


@pytest.mark.parametrize("kind", ["rename file", "move file", "rename folder", "move folder"])
def test_renames_and_moves_cost_no_download_and_no_embedding(live: Live, kind: str) -> None:
    MUTATIONS[kind](live.tenant)
    report = live.delta()
    assert live.downloads == 0
    assert report.embedding.get("inputs", 0) == 0 and live.embeddings.inputs == live.embeddings_before
    assert report.totals()["metadata_only"] >= 1
    live.assert_equals_fresh_full_sync()


def test_a_folder_rename_reaches_every_descendant(live: Live) -> None:
    folder = _folder(live.tenant, "Specifications")
    below = [i for i in live.tenant.items() if i.drive_id == folder.drive_id and i.path.startswith(folder.path.rstrip("/") + "/Specifications")]
    assert below, "the folder holds files"
    MUTATIONS["rename folder"](live.tenant)
    report = live.delta()
    assert report.totals()["metadata_only"] == len(below)
    docs = index_documents(live.settings())
    for item in below:
        chunks = [d for d in docs if d["parent_key"] == ItemRef(item.drive_id, item.item_id).parent_key]
        assert chunks and all("/Specs" in str(d["path"]) and "/Specs/" in str(d["url"]) for d in chunks)


def test_editing_one_paragraph_reembeds_only_the_changed_chunks(live: Live) -> None:
    item = _item(live.tenant, "Engineering Handbook.docx")
    ref = ItemRef(item.drive_id, item.item_id)
    before = {d["content_hash"] for d in index_documents(live.settings()) if d["parent_key"] == ref.parent_key}
    assert len(before) >= 5
    source = (SAMPLES / "engineering-handbook.md").read_text()
    edited = source.replace("reviewed every six months", "reviewed every four months", 1)
    assert edited != source
    live.tenant.update_content(item.drive_id, item.item_id, edited)
    report = live.delta()
    after = {d["content_hash"] for d in index_documents(live.settings()) if d["parent_key"] == ref.parent_key}
    new_hashes = after - before
    assert 1 <= len(new_hashes) <= 3
    assert report.embedding["inputs"] == len(new_hashes)
    assert live.embeddings.inputs - live.embeddings_before == len(new_hashes)
    assert report.totals()["content_changed"] == 1
    live.assert_equals_fresh_full_sync()


def test_a_shrinking_document_loses_its_stale_chunks(live: Live) -> None:
    item = _item(live.tenant, "Engineering Handbook.docx")
    live.tenant.update_content(item.drive_id, item.item_id, "# Handbook\nThe handbook moved to the wiki.")
    live.delta()
    chunks = [d for d in index_documents(live.settings()) if d["parent_key"] == ItemRef(item.drive_id, item.item_id).parent_key]
    assert len(chunks) == 1 and chunks[0]["chunk_count"] == 1
    live.assert_equals_fresh_full_sync()


def test_an_unchanged_tenant_costs_one_delta_page_per_library(live: Live) -> None:
    report = live.delta()
    stats = live.server.stats.snapshot()["requests"]
    libraries = len(report.libraries)
    assert stats["delta"] == libraries and stats["permissions"] == 0 and live.downloads == 0


def test_content_edits_keep_their_readers_without_asking_graph(live: Live) -> None:
    """An edit Graph reports without `sharedChanged` keeps the indexed readers: no permission
    read, and no lookup of the folders above the file (the index knows them)."""
    live.delta()
    idle = live.server.stats.snapshot()["requests"]  # what a run costs when nothing changed (sign-in...)
    edited = ["Leave and Holiday Policy.docx", "Engineering Handbook.docx", "RX-200 Arm Specification.pdf"]
    for name in edited:
        item = _item(live.tenant, name)
        live.tenant.update_content(item.drive_id, item.item_id, f"# {name}\nRewritten on review, with new figures.")
    report = live.delta()
    stats = live.server.stats.snapshot()["requests"]
    assert report.totals()["content_changed"] == len(edited)
    assert stats["permissions"] == 0 and stats["other"] == idle["other"] and stats["sharepoint_rest"] == 0
    assert report.index["acls_kept"] == len(edited)
    live.assert_equals_fresh_full_sync()


def test_a_sharing_change_is_read_not_kept(live: Live) -> None:
    item = _item(live.tenant, "Leave and Holiday Policy.docx")
    live.tenant.update_content(item.drive_id, item.item_id, "# Leave\nThirty days of leave.")
    live.tenant.set_permissions(item.drive_id, item.item_id, [{"user": "erik.johansson@northwindrobotics.example", "role": "read"}])
    report = live.delta()
    assert report.index["acls_kept"] == 0 and live.server.stats.snapshot()["requests"]["permissions"] >= 1
    docs = [d for d in index_documents(live.settings()) if d["parent_key"] == ItemRef(item.drive_id, item.item_id).parent_key]
    erik = next(u for u in live.tenant.users if u.upn.startswith("erik.johansson"))
    assert docs and all(d["user_ids"] == [erik.id] and d["group_ids"] == [] for d in docs)
    live.assert_equals_fresh_full_sync()


def test_a_full_sync_reads_permissions_once_per_scope(tmp_path: Path) -> None:
    """Files that inherit share their folder's (or library's) permission read; the readers are
    the same as reading every file's own permissions (the trimming tests check them all)."""
    tenant = load_tenant("demo")
    with SandboxServer(tenant) as server:
        report = sync(spindex_settings(server, tenant, tmp_path, None), full=True)
        assert report.status == "ok"
        items = sum(report.totals()[k] for k in ("created",))
        reads = server.stats.snapshot()["requests"]["permissions"]
        assert reads == report.index["permission_reads"]
        assert 0 < reads < items / 2, (reads, items)
