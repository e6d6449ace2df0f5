"""Extraction and chunking off the event loop, in worker processes where the platform allows.

The workers are forked from a server that has imported the job functions' modules and built
the default encoding's tables (`ingest.extraction_worker`), so each worker, the replacements
included, starts ready in milliseconds. Starting that server takes a
couple of seconds; `ExtractionPool.start` begins it in a thread when a run begins, beside the
run's first Graph requests, instead of on the event loop when the first document arrives.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
import select
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TypeVar

from ingest.errors import CorruptFile

log = logging.getLogger(__name__)
T = TypeVar("T")

# Jobs per worker, on average, before the pool is replaced by a fresh one: bounds parser caches.
# Not `max_tasks_per_child`: with it, Python before 3.13.10 / 3.14.1 can stop replacing workers
# and hang forever (CPython gh-115634).
WORKER_MAX_TASKS = 500
WORKER_PRELOAD = ["ingest.extraction_worker"]  # what the fork server imports before forking workers


class ExtractionPool:
    """Runs picklable jobs in `processes` worker processes (None: one per core), or in threads.

    Where processes cannot be had (no fork server or semaphores, `processes=0`, or a main script
    without an `if __name__ == "__main__":` guard, which workers would re-run) the work runs in
    threads of this process instead. A worker that dies takes its jobs with it: each is retried
    once in a fresh pool, and a document that kills a second worker is reported as corrupt.
    """

    def __init__(self, processes: int | None) -> None:
        self.processes = cores() if processes is None else processes
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._lock = threading.Lock()  # `start` builds the pool in a thread
        self._starting: asyncio.Future[None] | None = None
        self._generation = 0  # bumped by `close`: a start still under way then builds nothing
        self._submitted = 0  # jobs sent to the current pool
        self._use_threads = self.processes == 0
        if not self._use_threads and not _main_reruns_safely():
            log.warning("the main script has no `if __name__ == \"__main__\":` guard; extracting in threads")
            self._use_threads = True

    @property
    def uses_processes(self) -> bool:
        """True while jobs go to worker processes."""
        return not self._use_threads

    def start(self) -> None:
        """Start the workers now, in a thread, so that the first jobs find them running.

        Optional (the first job starts them otherwise); call it from the event loop that runs
        the jobs. A pool that cannot start falls back to threads, as it would for a job.
        """
        if self._use_threads or self._starting is not None:
            return
        # run_in_executor starts the thread now; a task would wait for the loop's next turn
        self._starting = asyncio.get_running_loop().run_in_executor(None, self._spawn, self._generation)

    def _spawn(self, generation: int) -> None:
        pool = self._executor(generation)
        if pool is None:
            return
        try:
            for _ in range(self.processes):
                pool.submit(os.getpid)  # each submit forks a worker while none is idle
        except (OSError, RuntimeError) as exc:  # no workers could be forked, or closed meanwhile
            with self._lock:
                if self._pool is pool:
                    log.warning("extraction workers unavailable (%s); using threads", type(exc).__name__)
                    self._use_threads = True

    def _executor(self, generation: int | None = None) -> concurrent.futures.ProcessPoolExecutor | None:
        with self._lock:
            if self._use_threads or generation not in (None, self._generation):
                return None
            if self._pool is None:
                try:
                    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
                    context = multiprocessing.get_context(method)
                    if method == "forkserver":
                        context.set_forkserver_preload(WORKER_PRELOAD)
                    self._pool = concurrent.futures.ProcessPoolExecutor(
                        self.processes, mp_context=context, initializer=_exit_with, initargs=(os.getpid(),)
                    )
                    self._submitted = 0
                except (OSError, NotImplementedError, ImportError, ValueError) as exc:
                    log.warning("no process pool for extraction (%s); using threads", type(exc).__name__)
                    self._use_threads = True
                    return None
            return self._pool

    async def run(self, job: Callable[[], T]) -> T:
        """`job()` (a picklable partial of a module-level function) in a worker; its result or error."""
        if self._starting is not None:
            await asyncio.shield(self._starting)  # a submit meanwhile would block the loop on the lock
        for attempt in (1, 2):
            pool = self._executor()
            if pool is None:
                break
            try:
                result = asyncio.get_running_loop().run_in_executor(pool, job)  # submits (and forks) here
            except (OSError, RuntimeError) as exc:  # the pool could not start its workers
                log.warning("extraction workers unavailable (%s); using threads", type(exc).__name__)
                self._use_threads = True
                break
            self._submitted += 1
            if self._submitted >= WORKER_MAX_TASKS * self.processes:
                self._retire(pool)  # its queued jobs still run; the next job starts a fresh pool
            try:
                return await result
            except BrokenProcessPool:
                self._retire(pool, cancel=True)  # the first of its victims replaces it
                if attempt == 2:
                    raise CorruptFile("extraction crashed its worker process twice") from None
        return await asyncio.to_thread(job)

    def _retire(self, pool: concurrent.futures.ProcessPoolExecutor, *, cancel: bool = False) -> None:
        with self._lock:
            if self._pool is not pool:
                return
            self._pool = None
        pool.shutdown(wait=False, cancel_futures=cancel)

    def close(self) -> None:
        """Stop the workers; later jobs would start a new pool."""
        with self._lock:
            pool, self._pool, self._starting = self._pool, None, None
            self._generation += 1
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _exit_with(pid: int) -> None:
    """In a worker: end this process as soon as process `pid` (the pool's owner) has ended.

    A crash, a kill or an `os._exit` there never tells the workers to stop; they would wait for
    jobs forever, and keep the fork server alive with them.
    """

    def watch() -> None:
        try:
            handle = os.pidfd_open(pid)  # Linux: readable once the process has ended
        except (AttributeError, OSError):  # elsewhere, or already gone
            while _alive(pid):
                time.sleep(1.0)
        else:
            select.select([handle], [], [])
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-owner", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _main_reruns_safely() -> bool:
    """False when workers would re-run the main script: they import it (as Python's spawn and
    forkserver do), and a script without an `if __name__ == "__main__":` guard would sync again."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name.endswith("__main__"):
        return True  # `python -m package`: workers do not import it
    path = getattr(main, "__file__", None)
    if not path:
        return True  # an interactive session: nothing to re-run
    try:
        return "__main__" in Path(path).read_text(errors="replace")
    except OSError:  # "<stdin>", or gone: workers could not import it either
        return False
