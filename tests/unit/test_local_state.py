"""Local state: cursors saved under ETag conditions, one lease per library.

Defends: a stale writer gets a conflict (never a silent overwrite); a second holder of a lease
is refused while the first holds it, and a crashed holder's lease is gone with its process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ingest.state.base import DriveCursor, LeaseHeld, StateConflict, migrate_cursor
from ingest.state.local import LocalStateStore


async def test_save_requires_the_current_etag(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path)
    assert await store.load("drive-a") is None
    first = await store.save("drive-a", DriveCursor(drive_id="a", link="L1"), if_match=None)
    with pytest.raises(StateConflict):
        await store.save("drive-a", DriveCursor(drive_id="a", link="X"), if_match=None)
    second = await store.save("drive-a", DriveCursor(drive_id="a", link="L2"), if_match=first)
    with pytest.raises(StateConflict):
        await store.save("drive-a", DriveCursor(drive_id="a", link="L3"), if_match=first)
    loaded = await store.load("drive-a")
    assert loaded is not None and loaded[0].link == "L2" and loaded[1] == second


async def test_lease_is_exclusive(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path)
    async with store.lease("drive-a"):
        with pytest.raises(LeaseHeld):
            async with LocalStateStore(tmp_path).lease("drive-a"):
                pass
        async with store.lease("drive-b"):
            pass
    async with store.lease("drive-a"):
        pass


async def test_crashed_holder_releases_its_lease(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import fcntl, os
        handle = open({str(tmp_path / 'drive-a.lease')!r}, 'a+')
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os._exit(0)  # dies holding the lock
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    async with LocalStateStore(tmp_path).lease("drive-a"):
        pass


def test_newer_schema_is_refused() -> None:
    with pytest.raises(ValueError, match="newer"):
        migrate_cursor({"schema_version": 99, "drive_id": "a"})
