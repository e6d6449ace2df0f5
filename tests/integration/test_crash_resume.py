"""A crash at any point, followed by a rerun, ends in the index an uninterrupted run makes.

Defends DESIGN invariant 1: `python -m jobs delta` runs as a subprocess and kills itself with
SIGKILL at a crash point (after a download, after embedding, between upsert and prune, after
prune, before and after a cursor commit), both during a first enumeration and during a delta
over changes; a rerun then leaves exactly the documents of a run that never crashed: no
missing, stale, orphan or duplicate chunk.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ingest.config import Settings
from sandbox.server import SandboxServer
from sandbox.tenant import Tenant, load_tenant
from tests.integration.conftest import index_documents, spindex_settings, sync

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
PAGE_SIZE = 6  # several delta pages (commits) per library

ENUMERATION_POINTS = ["download:3", "embed:7", "index_write:12", "prune:20", "commit:2", "committed:5", "download:30", "index_write:33"]
DELTA_POINTS = [
    "download:1", "download:2", "download:4", "embed:1", "embed:3", "embed:5",
    "index_write:1", "index_write:2", "index_write:4", "prune:1", "prune:3", "prune:5",
    "commit:1", "commit:3", "commit:6", "committed:1", "committed:4", "committed:8",
]


@dataclass
class World:
    tenant: Tenant
    server: SandboxServer
    tmp: Path

    def settings(self, data: Path) -> Settings:
        return spindex_settings(self.server, self.tenant, data, None, graph={"page_size": PAGE_SIZE})

    def crashed_delta(self, data: Path, point: str) -> int:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPINDEX_")}
        env.update(
            SPINDEX_CRASH_AT=point,
            SPINDEX_DATA_DIR=str(data),
            SPINDEX_GRAPH__AUTH="sandbox",
            SPINDEX_GRAPH__BASE_URL=self.server.graph_url,
            SPINDEX_GRAPH__TENANT_ID=self.tenant.tenant_id,
            SPINDEX_GRAPH__SHAREPOINT_URL=self.server.base_url,
            SPINDEX_GRAPH__PAGE_SIZE=str(PAGE_SIZE),
        )
        # No pipes: extraction pool workers outlive a SIGKILLed parent for a moment, and would
        # hold captured pipes open.
        done = subprocess.run(
            [sys.executable, "-m", "jobs", "delta"], cwd=ROOT, env=env, timeout=300,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        return done.returncode


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tenant = load_tenant("demo")
    with SandboxServer(tenant) as server:
        yield World(tenant, server, tmp_path_factory.mktemp("crash"))


def _mutate(tenant: Tenant) -> None:
    """Changes of every kind, so that a delta downloads, embeds, merges and deletes."""
    for name in ("Leave and Holiday Policy.docx", "Engineering Handbook.docx", "Purchasing and Approval Limits.docx"):
        item = tenant.find_item(name)
        tenant.update_content(item.drive_id, item.item_id, f"# {name}\nThis document was rewritten. " * 40)
    spec = tenant.find_item("RX-200 Arm Specification.pdf")
    tenant.rename(spec.drive_id, spec.item_id, "RX-200 Arm Specification (rev B).pdf")
    board = tenant.find_item("Q3 2025 Board Pack.pdf")
    tenant.delete(board.drive_id, board.item_id)
    tenant.add_file(spec.drive_id, "/Specifications", "Gripper G4 Notes.md", "# G4\nThe G4 gripper adds force sensing. " * 30)
    tenant.add_file(spec.drive_id, "/Specifications", "Sensor Kit.txt", "Sensor kit contents and calibration. " * 30)


def test_crash_during_first_enumeration_then_rerun(world: World) -> None:
    reference = world.tmp / "enum-reference"
    assert sync(world.settings(reference), full=False).status == "ok"
    expected = index_documents(world.settings(reference))
    for point in ENUMERATION_POINTS:
        data = world.tmp / f"enum-{point.replace(':', '-')}"
        code = world.crashed_delta(data, point)
        assert code == -signal.SIGKILL, f"{point} was never reached (exit {code})"
        report = sync(world.settings(data), full=False)
        assert report.status == "ok", (point, report.as_dict())
        assert index_documents(world.settings(data)) == expected, f"index differs after a crash at {point}"


def test_crash_during_delta_then_rerun(world: World) -> None:
    base = world.tmp / "delta-base"
    assert sync(world.settings(base), full=True).status == "ok"
    _mutate(world.tenant)
    reference = world.tmp / "delta-reference"
    shutil.copytree(base, reference)
    assert sync(world.settings(reference), full=False).status == "ok"
    expected = index_documents(world.settings(reference))
    assert expected != index_documents(world.settings(base))
    for point in DELTA_POINTS:
        data = world.tmp / f"delta-{point.replace(':', '-')}"
        shutil.copytree(base, data)
        code = world.crashed_delta(data, point)
        assert code == -signal.SIGKILL, f"{point} was never reached (exit {code})"
        report = sync(world.settings(data), full=False)
        assert report.status == "ok", (point, report.as_dict())
        assert index_documents(world.settings(data)) == expected, f"index differs after a crash at {point}"
