"""`spindex schedule`: the delta, ACL and full jobs on their cron expressions, in one process.

APScheduler's `CronTrigger` decides *when* (cron arithmetic, time zones, daylight-saving
changes; `ingest.config.cron_trigger` reads standard crontab weekdays). The loop that fires the
jobs is this module's own, with APScheduler's job semantics under the same names:

- `max_instances=1`: a job still running when its next time comes is not started again; that
  time is skipped and logged. Across processes, the library leases in the pipeline keep two
  runs off the same library.
- `coalesce=True`: several missed times (a busy or suspended process) make one run, not many.
- `misfire_grace_time`: a run that cannot start within `schedule.misfire_grace_seconds` of its
  time is skipped; the job waits for its next time.

It is not APScheduler's `AsyncIOScheduler` for two reasons: its clock is `datetime.now`, read in
several modules, so tests could not control time; and its shutdown cancels running coroutine
jobs at once, while a sync should get `schedule.grace_seconds` to finish. Here the clock is
injected (`Scheduler(clock=...)`) and tests step time with `tick()`.

SIGTERM (or Ctrl-C): scheduling stops; each running job is told to stop (its `stop` event, which
`run_sync` honours after its current batch when it accepts one) and given until the grace period
is nearly over; a job still running then is cancelled. Cancelling is safe: a library's cursor
advances only after a batch is written, so an unfinished batch is simply redone by the next run,
and leases are released by the context managers that hold them. The process then exits 0; a
second signal cancels at once. A run whose configuration is invalid stops the scheduler with
exit code 2. Each run's outcome is logged with the exit code `python -m jobs` would give it:
0 clean, 10 item failures, 20 aborted, 2 configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from ingest.config import Settings, cron_trigger
from ingest.errors import ConfigError
from ingest.report import EXIT_ABORTED, EXIT_CONFIG, EXIT_OK, RunReport

log = logging.getLogger("spindex.scheduler")

MODES = ("delta", "acl", "full")
Clock = Callable[[], datetime]
JobRun = Callable[[asyncio.Event], Awaitable[RunReport | None]]
MAX_CATCH_UP = 100_000  # fire times walked after a long suspension (a year of a one-minute job is ~525k)
MAX_SLEEP_S = 60.0  # wake at least this often, so a jump of the wall clock is noticed
CLEANUP_MARGIN_S = 5.0  # of the grace period, kept for cancelled runs to release leases and close clients


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)


@dataclass
class Job:
    """One scheduled job and what it has done so far."""

    mode: str
    trigger: Any  # an APScheduler CronTrigger
    run: JobRun
    next_fire: datetime | None = None
    task: asyncio.Task[None] | None = None
    started: int = 0
    skipped_running: int = 0
    missed: int = 0
    coalesced: int = 0

    @property
    def running(self) -> bool:
        """True while a run of this job is in progress."""
        return self.task is not None and not self.task.done()


class Scheduler:
    """Fires jobs at their cron times, one run per job at a time, with a graceful shutdown."""

    def __init__(
        self,
        jobs: Mapping[str, tuple[Any, JobRun]],
        *,
        clock: Clock = utc_now,
        misfire_grace_s: float = 300.0,
        grace_s: float = 60.0,
    ) -> None:
        self.jobs = {mode: Job(mode, trigger, run) for mode, (trigger, run) in jobs.items()}
        self.clock = clock
        self.misfire_grace = timedelta(seconds=misfire_grace_s)
        self.grace_s = grace_s
        self.stopping = asyncio.Event()  # handed to every run: "finish your batch and stop"
        self.exit_code: int | None = None
        self.cancelled = 0  # runs cancelled at the end of the grace period
        self._wake = asyncio.Event()

    @classmethod
    def from_settings(
        cls, settings: Settings, *, runners: Mapping[str, JobRun] | None = None, clock: Clock = utc_now
    ) -> Scheduler:
        """The jobs of `settings.schedule` (empty expressions leave a job out), run by `runners`."""
        schedule = settings.schedule
        runners = runners if runners is not None else default_runners(settings)
        jobs: dict[str, tuple[Any, JobRun]] = {}
        for mode in MODES:
            expression = getattr(schedule, mode)
            if expression and mode in runners:
                jobs[mode] = (cron_trigger(expression, schedule.timezone), runners[mode])
        return cls(jobs, clock=clock, misfire_grace_s=schedule.misfire_grace_seconds, grace_s=schedule.grace_seconds)

    # -- firing ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Compute each job's first fire time after now."""
        now = self.clock()
        for job in self.jobs.values():
            job.next_fire = job.trigger.get_next_fire_time(None, now)
            log.info("%s job scheduled", job.mode, extra={"job": job.mode, "next_run": _iso(job.next_fire)})

    def tick(self) -> list[str]:
        """Start every job whose time has come; returns the modes started.

        Missed times of one job make one run (coalesce); a job still running is not started
        again (max_instances=1); a run later than the misfire grace is skipped.
        """
        now = self.clock()
        started: list[str] = []
        for job in self.jobs.values():
            if self.stopping.is_set() or job.next_fire is None or job.next_fire > now:
                continue
            latest, due = job.next_fire, 0
            upcoming: datetime | None = job.next_fire
            while upcoming is not None and upcoming <= now and due < MAX_CATCH_UP:
                latest, due = upcoming, due + 1
                upcoming = job.trigger.get_next_fire_time(latest, now)
            job.next_fire = upcoming if upcoming is None or upcoming > now else job.trigger.get_next_fire_time(None, now)
            extra = {"job": job.mode, "scheduled_for": _iso(latest), "next_run": _iso(job.next_fire)}
            if job.running:
                job.skipped_running += due
                log.warning("%s job still running at its next time: not started twice", job.mode, extra=extra)
                continue
            if now - latest > self.misfire_grace:
                job.missed += due
                log.warning("%s run missed its time by more than the misfire grace: skipped", job.mode, extra=extra)
                continue
            if due > 1:
                job.coalesced += due - 1
                log.info("%s: %d missed times coalesced into one run", job.mode, due, extra=extra)
            self._launch(job, latest)
            started.append(job.mode)
        return started

    def run_now(self, mode: str) -> bool:
        """Start `mode` at once, unless it is running already; True when started."""
        job = self.jobs.get(mode)
        if job is None:
            raise ConfigError(f"no {mode} job is scheduled (schedule.{mode} is empty or unknown)")
        if job.running or self.stopping.is_set():
            return False
        self._launch(job, self.clock())
        return True

    def _launch(self, job: Job, scheduled_for: datetime) -> None:
        job.started += 1
        job.task = asyncio.create_task(self._execute(job, scheduled_for), name=f"spindex-{job.mode}")

    async def _execute(self, job: Job, scheduled_for: datetime) -> None:
        """One run of `job`, its outcome logged with the exit code `python -m jobs` would give."""
        extra: dict[str, Any] = {"job": job.mode, "scheduled_for": _iso(scheduled_for)}
        log.info("%s run starting", job.mode, extra=extra)
        try:
            report = await job.run(self.stopping)
        except asyncio.CancelledError:
            log.warning(
                "%s run cancelled at the end of the grace period; batches not committed are redone next run",
                job.mode, extra={**extra, "exit_code": EXIT_ABORTED},
            )
            raise
        except ConfigError as exc:
            log.error("%s run not started: %s", job.mode, exc, extra={**extra, "exit_code": EXIT_CONFIG})
            self._fatal(EXIT_CONFIG)
            return
        except Exception as exc:  # a bug in one run must not end the schedule
            log.exception("%s run failed: %s", job.mode, type(exc).__name__, extra={**extra, "exit_code": EXIT_ABORTED})
            return
        if report is None:
            return
        extra.update(run_id=report.run_id, status=report.status, exit_code=report.exit_code, duration_s=report.duration_s)
        if report.exit_code == EXIT_OK:
            log.info("%s run %s finished: %s", job.mode, report.run_id, report.status, extra=extra)
        else:
            reason = f" ({report.abort_reason})" if report.abort_reason else ""
            log.warning("%s run %s finished: %s%s", job.mode, report.run_id, report.status, reason, extra=extra)

    def _fatal(self, code: int) -> None:
        if self.exit_code is None:
            self.exit_code = code
        self._wake.set()

    # -- the loop -------------------------------------------------------------------------------

    def seconds_until_next(self) -> float:
        """How long the loop may sleep before the next fire time (at most MAX_SLEEP_S)."""
        times = [job.next_fire for job in self.jobs.values() if job.next_fire is not None]
        if not times:
            return MAX_SLEEP_S
        return max(0.0, min(MAX_SLEEP_S, (min(times) - self.clock()).total_seconds()))

    async def serve(self, stop: asyncio.Event, *, run_now: Iterable[str] = ()) -> int:
        """Fire jobs until `stop` is set (or a configuration error), then shut down; the exit code."""
        self.start()
        for mode in run_now:
            self.run_now(mode)
        while not stop.is_set() and self.exit_code is None:
            self.tick()
            stopper = asyncio.ensure_future(stop.wait())
            waker = asyncio.ensure_future(self._wake.wait())
            await asyncio.wait({stopper, waker}, timeout=self.seconds_until_next(), return_when=asyncio.FIRST_COMPLETED)
            for waiter in (stopper, waker):
                waiter.cancel()
        finished = await self.shutdown()
        log.info("scheduler stopped", extra={"runs_finished": finished, "exit_code": self.exit_code or EXIT_OK})
        return self.exit_code if self.exit_code is not None else EXIT_OK

    async def shutdown(self) -> bool:
        """Stop firing; let running jobs finish within the grace period, then cancel them.

        Returns True when every running job finished by itself.
        """
        self.stopping.set()
        running = [job.task for job in self.jobs.values() if job.task is not None and job.running]
        if not running:
            return True
        margin = min(CLEANUP_MARGIN_S, self.grace_s / 4)
        log.info("stopping: waiting up to %.1f s for %d running job(s)", self.grace_s - margin, len(running))
        _, pending = await asyncio.wait(running, timeout=self.grace_s - margin)
        for task in pending:
            task.cancel()
        self.cancelled += len(pending)
        if pending:
            await asyncio.wait(pending, timeout=margin)
        return not pending

    def cancel_running(self) -> None:
        """Cancel every running job now (a second SIGTERM)."""
        for job in self.jobs.values():
            if job.task is not None and job.running:
                job.task.cancel()

    async def wait_idle(self) -> None:
        """Wait until no job is running (tests step the clock between ticks with this)."""
        running = [job.task for job in self.jobs.values() if job.task is not None and job.running]
        if running:
            await asyncio.wait(running)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


async def _call(function: Callable[..., Awaitable[RunReport]], *args: Any, stop: asyncio.Event, **kwargs: Any) -> RunReport:
    """Call a run function, handing it `stop` only if it takes one."""
    if "stop" in inspect.signature(function).parameters:
        kwargs["stop"] = stop
    return await function(*args, **kwargs)


def default_runners(settings: Settings) -> dict[str, JobRun]:
    """The job of each mode: `run_sync` for full and delta, `run_acl_sweep` for acl (when present)."""
    import ingest.runs

    async def delta(stop: asyncio.Event) -> RunReport:
        return await _call(ingest.runs.run_sync, settings, full=False, stop=stop)

    async def full(stop: asyncio.Event) -> RunReport:
        return await _call(ingest.runs.run_sync, settings, full=True, stop=stop)

    async def acl(stop: asyncio.Event) -> RunReport | None:
        sweep = getattr(ingest.runs, "run_acl_sweep", None)
        if sweep is None:
            log.info("acl job skipped: this version of spindex has no ACL sweep (run_acl_sweep)", extra={"job": "acl"})
            return None
        return await _call(sweep, settings, stop=stop)

    return {"delta": delta, "acl": acl, "full": full}


async def serve_schedule(
    settings: Settings,
    *,
    run_now: Iterable[str] = (),
    runners: Mapping[str, JobRun] | None = None,
    clock: Clock = utc_now,
    hard_exit: bool = False,
) -> int:
    """Run the schedule until SIGTERM or SIGINT; the process exit code (0 after a clean stop).

    With `hard_exit` (the CLI), a process whose runs had to be cancelled ends here with
    `os._exit`: their extraction threads cannot be cancelled, and waiting for them at
    interpreter exit could outlast the grace period. What they were doing is discarded, as a
    cancelled run's unfinished batch always is.
    """
    scheduler = Scheduler.from_settings(settings, runners=runners, clock=clock)
    if not scheduler.jobs:
        raise ConfigError("nothing to schedule: schedule.delta, schedule.acl and schedule.full are all empty")
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("second %s: cancelling running jobs now", signal.Signals(signum).name)
            scheduler.cancel_running()
            return
        log.info("%s received: no new runs; running jobs get %s s", signal.Signals(signum).name, settings.schedule.grace_seconds)
        stop.set()

    handled = (signal.SIGTERM, signal.SIGINT)
    for signum in handled:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        code = await scheduler.serve(stop, run_now=run_now)
    finally:
        for signum in handled:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)
    if hard_exit and scheduler.cancelled:
        logging.shutdown()  # flush every log line first
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
