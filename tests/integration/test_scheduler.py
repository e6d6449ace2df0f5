"""`spindex schedule` fires each job on its cron expression, never twice at once, and stops cleanly.

Defends: with a controlled clock, jobs fire exactly at their cron times (standard crontab
weekdays, the configured time zone); a job still running at its next time is not started again;
missed times are coalesced into one run, and a run later than the misfire grace is skipped; the
ACL job calls `run_acl_sweep` when the library has one and is skipped otherwise; a configuration
error ends the scheduler with exit code 2. SIGTERM during a slow sync (a real `spindex schedule`
process) exits 0 within the grace period, leaves every cursor at a committed batch (a rerun then
ends in the index of a run never interrupted) and no lease held; the same shutdown with Blob
state releases the blob leases at once rather than leaving them to lapse.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import ingest.runs
from ingest.config import Settings, load_settings
from ingest.errors import ConfigError
from ingest.report import RunReport
from ingest.state.base import LeaseHeld, migrate_cursor
from ingest.state.local import LocalStateStore
from jobs.scheduler import Scheduler, default_runners
from sandbox.loader import build_tenant
from sandbox.server import SandboxServer
from sandbox.tenant import Tenant
from tests.integration.conftest import index_documents, spindex_settings, sync

ROOT = Path(__file__).resolve().parents[2]
UTC = timezone.utc


class FakeClock:
    """The scheduler's clock, moved by the test."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Recorder:
    """Job callables that record when they ran, optionally holding until released."""

    clock: FakeClock
    hold: asyncio.Event | None = None
    running: int = 0
    most_at_once: int = 0

    def __post_init__(self) -> None:
        self.runs: dict[str, list[datetime]] = {"delta": [], "acl": [], "full": []}

    def runner(self, mode: str) -> Any:
        async def run(stop: asyncio.Event) -> RunReport | None:
            self.runs[mode].append(self.clock())
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            try:
                if self.hold is not None and mode == "delta":
                    await self.hold.wait()
                await asyncio.sleep(0)
            finally:
                self.running -= 1
            return None

        return run

    def runners(self) -> dict[str, Any]:
        return {mode: self.runner(mode) for mode in self.runs}


def settings_with(tmp_path: Path, **schedule: Any) -> Settings:
    return load_settings(None, data_dir=tmp_path, schedule=schedule)


async def step(scheduler: Scheduler, clock: FakeClock, *, minutes: int, idle: bool = True) -> None:
    """Move the clock minute by minute, ticking the scheduler at each step."""
    for _ in range(minutes):
        clock.advance(minutes=1)
        scheduler.tick()
        await asyncio.sleep(0)
        if idle:
            await scheduler.wait_idle()


# -- firing, with a controlled clock --------------------------------------------------------


async def test_jobs_fire_on_their_cron_expressions(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2025, 1, 6, 10, 0, 30, tzinfo=UTC))  # a Monday
    recorder = Recorder(clock)
    scheduler = Scheduler.from_settings(settings_with(tmp_path), runners=recorder.runners(), clock=clock)
    scheduler.start()
    await step(scheduler, clock, minutes=60)
    assert [t.strftime("%H:%M") for t in recorder.runs["delta"]] == ["10:15", "10:30", "10:45", "11:00"]
    assert [t.strftime("%H:%M") for t in recorder.runs["acl"]] == ["10:07"]
    assert recorder.runs["full"] == []
    await step(scheduler, clock, minutes=16 * 60)  # through the night: the full job at 02:37
    assert [t.strftime("%d %H:%M") for t in recorder.runs["full"]] == ["07 02:37"]
    assert len(recorder.runs["acl"]) == 17 and recorder.most_at_once == 1


async def test_cron_times_are_read_in_the_configured_time_zone_with_crontab_weekdays(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2025, 1, 5, 0, 0, 30, tzinfo=UTC))  # a Sunday
    recorder = Recorder(clock)
    settings = settings_with(tmp_path, delta="0 9 * * 1-5", acl="0 12 * * 0", full="37 2 * * *", timezone="Europe/Berlin")
    scheduler = Scheduler.from_settings(settings, runners=recorder.runners(), clock=clock)
    scheduler.start()
    await step(scheduler, clock, minutes=(7 * 24 + 12) * 60)  # to Sunday noon a week later
    # 09:00 in Berlin is 08:00 UTC in winter; 1-5 is Monday to Friday, 0 is Sunday, as in crontab.
    assert [t.strftime("%a %H:%M") for t in recorder.runs["delta"]] == [
        "Mon 08:00", "Tue 08:00", "Wed 08:00", "Thu 08:00", "Fri 08:00"
    ]
    assert [t.strftime("%a %d %H:%M") for t in recorder.runs["acl"]] == ["Sun 05 11:00", "Sun 12 11:00"]
    assert {t.strftime("%H:%M") for t in recorder.runs["full"]} == {"01:37"}


async def test_a_job_still_running_at_its_next_time_is_not_started_twice(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2025, 1, 6, 10, 0, 30, tzinfo=UTC))
    recorder = Recorder(clock, hold=asyncio.Event())
    scheduler = Scheduler.from_settings(settings_with(tmp_path, acl="", full=""), runners=recorder.runners(), clock=clock)
    scheduler.start()
    await step(scheduler, clock, minutes=50, idle=False)  # 10:15 starts; 10:30 and 10:45 find it running
    assert len(recorder.runs["delta"]) == 1
    assert scheduler.jobs["delta"].skipped_running == 2
    assert not scheduler.run_now("delta")  # not by hand either
    recorder.hold.set()
    await scheduler.wait_idle()
    await step(scheduler, clock, minutes=15)  # 11:00 starts again
    assert [t.strftime("%H:%M") for t in recorder.runs["delta"]] == ["10:15", "11:00"]
    assert recorder.most_at_once == 1


async def test_missed_times_are_coalesced_and_late_runs_skipped(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2025, 1, 6, 10, 0, 30, tzinfo=UTC))
    recorder = Recorder(clock)
    settings = settings_with(tmp_path, misfire_grace_seconds=300)
    scheduler = Scheduler.from_settings(settings, runners=recorder.runners(), clock=clock)
    scheduler.start()
    clock.now = datetime(2025, 1, 6, 12, 0, 10, tzinfo=UTC)  # the process was suspended for two hours
    assert scheduler.tick() == ["delta"]
    await scheduler.wait_idle()
    delta, acl = scheduler.jobs["delta"], scheduler.jobs["acl"]
    assert len(recorder.runs["delta"]) == 1 and delta.coalesced == 7  # 10:15 ... 12:00: one run
    assert recorder.runs["acl"] == [] and acl.missed == 2  # 10:07 and 11:07: too late, skipped
    assert delta.next_fire == datetime(2025, 1, 6, 12, 15, tzinfo=UTC)
    assert acl.next_fire == datetime(2025, 1, 6, 12, 7, tzinfo=UTC)


async def test_the_acl_job_runs_the_sweep_when_the_library_has_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_with(tmp_path)
    stop = asyncio.Event()
    monkeypatch.delattr(ingest.runs, "run_acl_sweep", raising=False)
    with caplog.at_level("INFO", logger="spindex.scheduler"):
        assert await default_runners(settings)["acl"](stop) is None
    assert "acl job skipped" in caplog.text

    calls: list[tuple[Settings, asyncio.Event]] = []

    async def run_acl_sweep(given: Settings, *, stop: asyncio.Event) -> RunReport:
        calls.append((given, stop))
        report = RunReport(mode="acl")
        report.finish()
        return report

    monkeypatch.setattr(ingest.runs, "run_acl_sweep", run_acl_sweep, raising=False)
    report = await default_runners(settings)["acl"](stop)
    assert report is not None and report.mode == "acl" and calls == [(settings, stop)]


async def test_a_configuration_error_stops_the_scheduler_with_exit_code_2(tmp_path: Path) -> None:
    async def broken(stop: asyncio.Event) -> RunReport:
        raise ConfigError("embedding.api_key is required for provider openai")

    scheduler = Scheduler.from_settings(settings_with(tmp_path, acl="", full=""), runners={"delta": broken})
    assert await scheduler.serve(asyncio.Event(), run_now=["delta"]) == 2


# -- shutdown, against the sandbox ----------------------------------------------------------

FILES = 16
PAGE_SIZE = 2  # eight batches, so a SIGTERM lands between commits


def small_tenant() -> Tenant:
    items = [{"file": f"note-{n:02d}.md", "text": f"# Note {n}\nScheduled sync note number {n}. " * 20} for n in range(FILES)]
    return build_tenant({
        "tenant": {"id": "2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f", "name": "Schedule Co", "hostname": "scheduleco.sharepoint.com"},
        "users": [{"upn": "ann@schedule.example", "display_name": "Ann"}],
        "sites": [{
            "path": "/sites/notes", "display_name": "Notes",
            "site_groups": [{"id": 3, "title": "Notes Owners", "associated": "owners", "members": ["ann@schedule.example"]}],
            "libraries": [{"name": "Documents", "items": items}],
        }],
    })


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[Tenant, SandboxServer]]:
    tenant = small_tenant()
    with SandboxServer(tenant) as server:
        yield tenant, server


def _env(server: SandboxServer, tenant: Tenant, data: Path, grace: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPINDEX_")}
    env.update(
        SPINDEX_DATA_DIR=str(data),
        SPINDEX_GRAPH__AUTH="sandbox",
        SPINDEX_GRAPH__BASE_URL=server.graph_url,
        SPINDEX_GRAPH__TENANT_ID=tenant.tenant_id,
        SPINDEX_GRAPH__SHAREPOINT_URL=server.base_url,
        SPINDEX_GRAPH__PAGE_SIZE=str(PAGE_SIZE),
        SPINDEX_SCHEDULE__ACL="",
        SPINDEX_SCHEDULE__FULL="",
        SPINDEX_SCHEDULE__GRACE_SECONDS=str(grace),
        SPINDEX_LOG_FORMAT="json",
    )
    return env


def _wait_for(condition: Any, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def _cursors(state_dir: Path) -> dict[str, Any]:
    return {p.stem: migrate_cursor(json.loads(p.read_text())) for p in state_dir.glob("*.json")}


def _mid_library(state_dir: Path) -> bool:
    """True once some library's cursor is committed and not caught up (libraries sync at once)."""
    try:
        return any(not cursor.caught_up for cursor in _cursors(state_dir).values())
    except (OSError, ValueError):  # a cursor being replaced right now
        return False


def test_sigterm_mid_run_exits_0_with_committed_cursors_and_no_lease_held(
    sandbox: tuple[Tenant, SandboxServer], tmp_path: Path
) -> None:
    tenant, server = sandbox
    reference = tmp_path / "reference"
    assert sync(spindex_settings(server, tenant, reference, None, graph={"page_size": PAGE_SIZE}), full=True).status == "ok"

    data, grace = tmp_path / "scheduled", 1
    state_dir = data / "state"
    server.faults.latency_s = 0.15  # slow enough that the run is mid-library at SIGTERM
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "jobs.ops_cli", "schedule", "--run-now", "delta"],
            cwd=ROOT, env=_env(server, tenant, data, grace), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            _wait_for(
                lambda: _mid_library(state_dir) or process.poll() is not None,
                timeout=60, what="a committed batch that is not a library's last",
            )
            assert process.poll() is None, process.communicate()[1]
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=grace + 15)
        finally:
            if process.poll() is None:
                process.kill()
    finally:
        server.faults.latency_s = 0.0
    assert process.returncode == 0, stderr
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(entry.get("exit_code") is not None and entry.get("job") == "delta" for entry in lines), stderr
    assert not list(state_dir.glob("*.tmp")), "a cursor write was left half done"
    cursors = _cursors(state_dir)
    assert cursors and not all(c.caught_up for c in cursors.values()), "the run finished before SIGTERM"

    async def take_every_lease() -> None:
        store = LocalStateStore(state_dir)
        for lease in state_dir.glob("*.lease"):
            async with store.lease(lease.stem):
                pass

    asyncio.run(take_every_lease())
    settings = spindex_settings(server, tenant, data, None, graph={"page_size": PAGE_SIZE})
    assert sync(settings, full=False).status == "ok"
    assert index_documents(settings) == index_documents(spindex_settings(server, tenant, reference, None))


async def test_shutdown_with_blob_state_releases_the_leases_at_once(
    sandbox: tuple[Tenant, SandboxServer], tmp_path: Path
) -> None:
    from azure.storage.blob.aio import BlobServiceClient

    from ingest.state.blob import BlobStateStore
    from tests.fakes.azurite import Azurite

    tenant, server = sandbox
    with Azurite() as azurite:
        settings = spindex_settings(
            server, tenant, tmp_path, None, graph={"page_size": PAGE_SIZE},
            state={"backend": "blob", "blob_connection_string": azurite.connection_string, "blob_container": "sched"},
            schedule={"acl": "", "full": "", "grace_seconds": 1},
        )
        service = BlobServiceClient.from_connection_string(azurite.connection_string)
        container = service.get_container_client("sched")

        async def names(prefix: str) -> list[str]:
            try:
                return [b.name async for b in container.list_blobs(name_starts_with=prefix)]
            except Exception:  # the container does not exist yet
                return []

        server.faults.latency_s = 0.15
        stop = asyncio.Event()
        scheduler = Scheduler.from_settings(settings)
        serving = asyncio.create_task(scheduler.serve(stop, run_now=["delta"]))
        try:
            for _ in range(600):
                if await names("cursors/"):
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail("no batch was committed")
            stop.set()
            assert await serving == 0
        finally:
            server.faults.latency_s = 0.0
        leases = [name.removeprefix("leases/") for name in await names("leases/")]
        assert leases
        store = BlobStateStore(BlobServiceClient.from_connection_string(azurite.connection_string), "sched", lease_seconds=60)
        try:
            for key in leases:  # a lease left behind would hold for its 15-60 s
                try:
                    async with store.lease(key):
                        pass
                except LeaseHeld:
                    pytest.fail(f"lease {key} was still held after shutdown")
        finally:
            await store.close()
            await service.close()
