"""A rebuild behind the alias: zero downtime, nothing lost, nothing redone needlessly.

Defends DESIGN invariant 6: while a reader queries the alias in a loop, `reindex` with a new
chunk size builds `<alias>-v2` beside v1 and swaps with no failed and no empty result; an
edit, a delete and a permission change made in SharePoint while the rebuild runs all show
after the swap; a rebuild with unchanged chunking and model makes no embedding call and no
download (staging and vector reuse); rollback points the alias back at the previous index,
and prune never deletes the alias target or the rollback target.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from ingest import aliases
from ingest.components import build_catalog
from ingest.models import ItemRef
from ingest.query import security_filter
from ingest.runs import run_reindex
from sandbox.server import SandboxServer
from sandbox.tenant import load_tenant
from tests.integration.conftest import index_documents, spindex_settings, sync


class Reader(threading.Thread):
    """Queries the alias as one user until stopped, counting failures and empty answers."""

    def __init__(self, settings, user_id: str, groups: set[str]) -> None:  # noqa: ANN001
        super().__init__(daemon=True)
        self.settings, self.security = settings, security_filter(user_id, groups)
        self.stop = threading.Event()
        self.queries = self.failures = self.empty = 0

    def run(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        catalog = build_catalog(self.settings)
        while not self.stop.is_set():
            try:
                store = await catalog.open_index(str(await catalog.get_alias(self.settings.index.alias)))
                try:
                    hits = await store.search("policy leave employees", None, security=self.security, top=5)
                finally:
                    await store.close()
                self.queries += 1
                self.empty += not hits
            except Exception:  # any failure a reader would see counts
                self.failures += 1
            await asyncio.sleep(0.01)


def test_rebuild_swaps_with_zero_downtime_and_loses_nothing(tmp_path: Path) -> None:
    tenant = load_tenant("demo")
    with SandboxServer(tenant) as server:
        v1_settings = spindex_settings(server, tenant, tmp_path, None)
        assert sync(v1_settings, full=True).status == "ok"
        v1_docs = index_documents(v1_settings)
        alice = tenant.user("alice.nguyen@northwindrobotics.example")
        reader = Reader(v1_settings, alice.id, tenant.transitive_group_ids(alice.id))
        reader.start()

        edited = tenant.find_item("Remote Work Policy.md")
        deleted = tenant.find_item("Holiday Calendar 2025.xlsx")
        shared = tenant.find_item("Relocation Agreement - Chen Wei.docx")
        changed = threading.Event()

        def change_during_rebuild(event: str, drive, n: int) -> None:  # noqa: ANN001
            if event == "batch" and not changed.is_set():
                changed.set()
                tenant.update_content(edited.drive_id, edited.item_id, "# Remote work\nRemote work needs a zebra-striped desk.")
                tenant.delete(deleted.drive_id, deleted.item_id)
                tenant.set_permissions(shared.drive_id, shared.item_id, [{"user": alice.upn, "role": "read"}])

        v2_settings = spindex_settings(server, tenant, tmp_path, None, chunking={"chunk_tokens": 128, "overlap_tokens": 16},
                                       index={"validation_queries": ["leave policy"]})
        report = asyncio.run(run_reindex(v2_settings, progress=change_during_rebuild))
        reader.stop.set()
        reader.join(timeout=30)
        assert report.status == "ok", report.as_dict()
        assert changed.is_set() and report.rebuild["swapped"] is True and report.rebuild["index"] == "spindex-v2"
        assert reader.queries > 10 and reader.failures == 0 and reader.empty == 0

        v2_docs = index_documents(v2_settings)
        assert len(v2_docs) > len(v1_docs)  # smaller chunks
        by_item: dict[str, list[dict]] = {}
        for doc in v2_docs:
            by_item.setdefault(str(doc["parent_key"]), []).append(doc)
        assert "zebra-striped" in " ".join(str(d["content"]) for d in by_item[ItemRef(edited.drive_id, edited.item_id).parent_key])
        assert ItemRef(deleted.drive_id, deleted.item_id).parent_key not in by_item
        assert {alice.id} <= set(by_item[ItemRef(shared.drive_id, shared.item_id).parent_key][0]["user_ids"])

        server.stats.reset()
        same = asyncio.run(run_reindex(v2_settings))
        assert same.status == "ok" and same.rebuild["index"] == "spindex-v3"
        assert same.embedding.get("inputs", 0) == 0 and server.stats.snapshot()["downloads"] == 0
        assert same.index["staged_reads"] > 0 and same.embedding["reused"] > 0

        async def roll() -> tuple[aliases.AliasStatus, list[str]]:
            catalog = build_catalog(v2_settings)
            status = await aliases.rollback(catalog, "spindex")
            return status, await aliases.prune(catalog, "spindex", keep=1)

        status, pruned = asyncio.run(roll())
        assert status.target == "spindex-v2" and status.rollback == "spindex-v1"
        assert pruned == [] or set(pruned).isdisjoint({"spindex-v2", "spindex-v1"})
        assert index_documents(v2_settings) == v2_docs
