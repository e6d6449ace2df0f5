"""A library whose delta link is refused (410) is enumerated again and reconciled exactly.

Defends: after a 410 `resyncRequired` on a library's delta link, the run re-enumerates that
library through the same code path, ends with the index a full sync makes, and removes exactly
the items the library no longer has (no more, no fewer). With 30% of Graph requests throttled
(429 with Retry-After), a delta run ends with the same index and counts the throttled responses.
Delta links stored under another Graph endpoint are not followed (the token would go with
them): every library is enumerated again, to the index a full sync makes. A delta page that is
not JSON (a proxy's HTML page) aborts the run with a reason that says so, and loses nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ingest.config import Settings
from ingest.models import ItemRef
from sandbox.server import SandboxServer
from sandbox.tenant import Tenant, load_tenant
from tests.integration.conftest import index_documents, spindex_settings, sync


@dataclass
class World:
    tenant: Tenant
    server: SandboxServer
    tmp: Path

    def settings(self, name: str) -> Settings:
        return spindex_settings(self.server, self.tenant, self.tmp / name, None, graph={"page_size": 10})


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    tenant = load_tenant("demo")
    with SandboxServer(tenant) as server:
        state = World(tenant, server, tmp_path)
        assert sync(state.settings("live"), full=True).status == "ok"
        yield state


def test_gone_delta_link_triggers_a_reconciling_full_enumeration(world: World) -> None:
    tenant = world.tenant
    spec = tenant.find_item("RX-200 Arm Specification.pdf")
    drive = spec.drive_id
    vanished = [tenant.find_item(n) for n in ("Gripper G3 Design Notes.docx", "Product Roadmap 2026.pptx")]
    for item in vanished:
        tenant.delete(item.drive_id, item.item_id)
    tenant.add_file(drive, "/Specifications", "Arm Calibration.md", "# Calibration\nCalibrate the RX-200 arm yearly.")
    tenant.rename(drive, spec.item_id, "RX-200 Arm Specification v3.pdf")
    world.server.faults.gone_drives = {drive}
    report = sync(world.settings("live"), full=False)
    world.server.faults.gone_drives = set()
    assert report.status == "ok", report.as_dict()
    assert [r["drive_id"] for r in report.resyncs] == [drive]
    assert report.libraries[drive]["deleted"] == len(vanished)
    live = index_documents(world.settings("live"))
    gone = {ItemRef(i.drive_id, i.item_id).parent_key for i in vanished}
    assert not gone & {d["parent_key"] for d in live}
    assert sync(world.settings("fresh"), full=True).status == "ok"
    assert live == index_documents(world.settings("fresh"))
    again = sync(world.settings("live"), full=False)  # the new delta link works
    assert again.resyncs == [] and again.totals()["deleted"] == 0


def test_throttled_delta_ends_with_the_same_index_and_counts_throttles(world: World) -> None:
    tenant = world.tenant
    for name in ("Leave and Holiday Policy.docx", "Remote Work Policy.md"):
        item = tenant.find_item(name)
        tenant.update_content(item.drive_id, item.item_id, f"# {name}\nRevised text for the policy. " * 20)
    board = tenant.find_item("Q3 2025 Board Pack.pdf")
    tenant.delete(board.drive_id, board.item_id)
    world.server.faults.retry_after = 0
    world.server.faults.throttle_rate = 0.3
    world.server.stats.reset()
    report = sync(world.settings("live"), full=False)
    world.server.faults.throttle_rate = 0.0
    assert report.status == "ok", report.as_dict()
    throttled = world.server.stats.snapshot()["throttled"]
    assert throttled > 0
    assert report.graph["throttled"] == throttled
    assert sync(world.settings("fresh"), full=True).status == "ok"
    assert index_documents(world.settings("live")) == index_documents(world.settings("fresh"))


def test_a_delta_link_off_graph_s_host_starts_the_library_over(world: World) -> None:
    """Cursors stored under one Graph endpoint are not followed under another, where the
    credential's token would go with them: each library is enumerated again instead."""
    tenant = world.tenant
    spec = tenant.find_item("RX-200 Arm Specification.pdf")
    tenant.add_file(spec.drive_id, "/Specifications", "Arm Calibration.md", "# Calibration\nCalibrate the RX-200 arm yearly.")
    world.server.stats.reset()
    with SandboxServer(tenant) as moved:  # the same tenant behind another endpoint
        settings = spindex_settings(moved, tenant, world.tmp / "live", None, graph={"page_size": 10})
        report = sync(settings, full=False)
        assert report.status == "ok", report.as_dict()
        assert {r["drive_id"] for r in report.resyncs} == set(report.libraries)
        assert all("outside Graph" in r["reason"] for r in report.resyncs)
        assert world.server.stats.snapshot()["total_requests"] == 0  # nothing went to the old endpoint
        fresh = spindex_settings(moved, tenant, world.tmp / "fresh", None, graph={"page_size": 10})
        assert sync(fresh, full=True).status == "ok"
        assert index_documents(settings) == index_documents(fresh)
        again = sync(settings, full=False)  # the new links are followed
        assert again.resyncs == [] and again.totals()["deleted"] == 0


def test_a_delta_page_that_is_not_json_aborts_the_run_named_and_loses_nothing(world: World) -> None:
    """A proxy's HTML page where a delta page should be: the run stops with a reason that
    says so, commits nothing for that library, and the next run picks up every change."""
    tenant = world.tenant
    spec = tenant.find_item("RX-200 Arm Specification.pdf")
    tenant.add_file(spec.drive_id, "/Specifications", "Arm Calibration.md", "# Calibration\nCalibrate the RX-200 arm yearly.")
    world.server.faults.garbled_drives = {spec.drive_id}
    report = sync(world.settings("live"), full=False)
    world.server.faults.garbled_drives = set()
    assert report.status == "aborted"
    assert "SourceUnavailable" in (report.abort_reason or "") and "not JSON" in (report.abort_reason or "")
    assert sync(world.settings("live"), full=False).status == "ok"
    assert sync(world.settings("fresh"), full=True).status == "ok"
    assert index_documents(world.settings("live")) == index_documents(world.settings("fresh"))
