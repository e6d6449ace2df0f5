"""Blob state against a real Azurite: ETag-guarded cursors and per-library leases.

Defends: a stale-ETag write is refused (never a silent overwrite); a lease held by one run is
refused to another; a run cancelled while taking its lease leaves none behind; a crashed
holder's lease lapses and the next run proceeds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from azure.storage.blob.aio import BlobServiceClient

from ingest.state.base import DriveCursor, LeaseHeld, StateConflict
from ingest.state.blob import BlobStateStore
from tests.fakes.azurite import Azurite

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def azurite():
    with Azurite() as server:
        yield server


def _store(azurite: Azurite, container: str = "state", lease_seconds: int = 15) -> BlobStateStore:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    return BlobStateStore(service, container, lease_seconds=lease_seconds)


async def test_stale_etag_write_is_refused(azurite: Azurite) -> None:
    store = _store(azurite, "etags")
    try:
        assert await store.load("drive-a") is None
        first = await store.save("drive-a", DriveCursor(drive_id="a", link="L1"), if_match=None)
        with pytest.raises(StateConflict):
            await store.save("drive-a", DriveCursor(drive_id="a", link="again"), if_match=None)
        second = await store.save("drive-a", DriveCursor(drive_id="a", link="L2"), if_match=first)
        with pytest.raises(StateConflict):
            await store.save("drive-a", DriveCursor(drive_id="a", link="stale"), if_match=first)
        loaded = await store.load("drive-a")
        assert loaded is not None and loaded[0].link == "L2" and loaded[1] == second
    finally:
        await store.close()


async def test_a_held_lease_is_refused_to_another_run(azurite: Azurite) -> None:
    first, second = _store(azurite, "leases"), _store(azurite, "leases")
    try:
        async with first.lease("drive-a"):
            with pytest.raises(LeaseHeld):
                async with second.lease("drive-a"):
                    pytest.fail("two holders of one lease")
            async with second.lease("drive-b"):
                pass
        async with second.lease("drive-a"):  # released on exit
            pass
    finally:
        await first.close()
        await second.close()


async def test_a_run_cancelled_while_taking_a_lease_leaves_none_behind(azurite: Azurite) -> None:
    """Cancel a run at every moment of taking its lease, the lease request in flight included:
    the library is free again at once, not locked until the lease lapses."""
    holder, other = _store(azurite, "cancels"), _store(azurite, "cancels")
    entered = 0

    async def hold(key: str) -> None:
        nonlocal entered
        async with holder.lease(key):
            entered += 1
            await asyncio.sleep(10)

    try:
        async with holder.lease("warm-up"):  # container and connections made, as in a run
            pass
        for step in range(60):
            key = f"drive-{step}"
            task = asyncio.create_task(hold(key))
            await asyncio.sleep(step * 0.0005)  # from before the first request to inside the block
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            try:
                async with other.lease(key):
                    pass
            except LeaseHeld:
                pytest.fail(f"cancelled after {step * 0.5} ms, the lease of {key} was left behind")
        assert 0 < entered < 60  # some cancels came before the block, some inside it
    finally:
        await holder.close()
        await other.close()


async def test_crashed_holder_lease_lapses(azurite: Azurite) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, os, sys
        from azure.storage.blob.aio import BlobServiceClient
        from ingest.state.blob import BlobStateStore
        async def main():
            store = BlobStateStore(BlobServiceClient.from_connection_string({azurite.connection_string!r}), "crash", lease_seconds=15)
            async with store.lease("drive-a"):
                print("held", flush=True)
                await asyncio.sleep(3600)
        asyncio.run(main())
        """
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=os.getcwd())
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == b"held"
    store = _store(azurite, "crash")
    try:
        with pytest.raises(LeaseHeld):
            async with store.lease("drive-a"):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        for _ in range(40):  # the 15 s lease lapses without renewal
            try:
                async with store.lease("drive-a"):
                    break
            except LeaseHeld:
                await asyncio.sleep(1)
        else:
            pytest.fail("lease of a crashed holder never lapsed")
    finally:
        await store.close()


def test_a_run_meeting_a_leased_library_skips_it_and_never_processes_it(azurite: Azurite, tmp_path) -> None:
    from ingest.components import build_state
    from sandbox.server import SandboxServer
    from sandbox.tenant import load_tenant
    from tests.integration.conftest import index_documents, spindex_settings, sync

    tenant = load_tenant("demo")
    with SandboxServer(tenant) as server:
        state = {"backend": "blob", "blob_connection_string": azurite.connection_string, "blob_container": "pipeline"}
        settings = spindex_settings(server, tenant, tmp_path / "data", None, state=state)
        held = tenant.find_item("RX-200 Arm Specification.pdf").drive_id

        async def hold_and_sync():
            from ingest.models import DriveRef, SiteRef
            from ingest.runs import run_sync

            holder = build_state(settings)
            key = DriveRef(SiteRef("", "", ""), held, "", "").state_key(f"{settings.index.alias}-v1")
            try:
                async with holder.lease(key):
                    return await run_sync(settings, full=False)
            finally:
                await holder.close()

        report = asyncio.run(hold_and_sync())
        assert report.status == "ok" and report.leased == [held]
        docs = index_documents(settings)
        assert docs and all(d["drive_id"] != held for d in docs)
        report = sync(settings, full=False)  # lease released: the library is synced now
        assert report.leased == [] and any(d["drive_id"] == held for d in index_documents(settings))


async def test_blob_staging_keeps_text_per_version(azurite: Azurite) -> None:
    from ingest.errors import BadInput, CorruptFile
    from ingest.models import Extracted, ItemRef, Section
    from ingest.staging import BlobStaging

    staging = BlobStaging(BlobServiceClient.from_connection_string(azurite.connection_string), "staging")
    ref, other = ItemRef("b!drive", "item-1"), ItemRef("b!drive", "item-2")
    try:
        text = Extracted([Section("page one", 1), Section("page two", 2)], "Title")
        await staging.put(ref, "c:{1},1", text)
        assert await staging.get(ref, "c:{1},1") == text
        assert await staging.get(ref, "c:{1},2") is None  # another version: download again
        assert await staging.get(other, "c:{1},1") is None
        await staging.put_bad(other, "c:{2},1", CorruptFile("damaged PDF"))
        with pytest.raises(BadInput) as info:
            await staging.get(other, "c:{2},1")
        assert info.value.reason == "corrupt"
        await staging.delete(ref)
        assert await staging.get(ref, "c:{1},1") is None
    finally:
        await staging.close()
