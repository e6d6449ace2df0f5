"""Measuring helpers: peak memory of a process tree, CPU load, and writing result files."""

from __future__ import annotations

import json
import os
import resource
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).parent / "results"


def _status_kb(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return found


class PeakMemory:
    """Samples the peak resident memory (VmHWM) of this process's descendants while it runs.

    This process's own peak comes from getrusage. Descendants are sampled every `interval_s`
    (a worker replaced between two samples is missed; they live for hundreds of documents).
    """

    def __init__(self, interval_s: float = 0.25) -> None:
        self.interval_s = interval_s
        self.children_peak_kb: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def sample(self) -> None:
        """Record the peak of every current descendant."""
        todo, seen = _children(os.getpid()), set()
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            peak = _status_kb(pid, "VmHWM")
            if peak is not None:
                self.children_peak_kb[pid] = max(peak, self.children_peak_kb.get(pid, 0))
            todo.extend(_children(pid))

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sample()
        self._stop.set()
        self._thread.join(timeout=5)

    def result(self) -> dict[str, float]:
        """Peaks in MiB: this process, the largest descendant, and the descendants' sum of peaks."""
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        peaks = list(self.children_peak_kb.values())
        return {
            "main_mib": round(own / 1024, 1),
            "largest_worker_mib": round(max(peaks, default=0) / 1024, 1),
            "workers_seen": len(peaks),
        }


def load_average() -> float:
    """The 1-minute load average (other work on the machine skews timings)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return -1.0


def write_result(name: str, result: dict[str, Any]) -> Path:
    """Write `result` as `results/<name>-<timestamp>.json` and `results/<name>-latest.json`."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    result = {"benchmark": name, "finished_at": stamp, "cpu_count": os.cpu_count(), **result}
    text = json.dumps(result, indent=2)
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    path.write_text(text + "\n")
    (RESULTS_DIR / f"{name}-latest.json").write_text(text + "\n")
    return path


def table(rows: list[tuple[str, ...]]) -> str:
    """Rows as an aligned plain-text table, the first row being the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


class Stopwatch:
    """Wall-clock seconds of a block."""

    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
