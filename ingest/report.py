"""The run report: what a run did, per library, and why anything was skipped or failed.

Every run writes it as JSON (`<data_dir>/reports/<run_id>.json`, and `latest.json`) and the CLI
prints a short summary. Entries hold ids, names, stages and reasons, never secrets.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

# Exit codes of `spindex run` and `python -m jobs` (documented in the README).
EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_ITEM_FAILURES = 10
EXIT_ABORTED = 20

# What happened to each item, one counter per kind and library.
CHANGE_KINDS = ("created", "content_changed", "metadata_only", "acl_only", "unchanged", "deleted", "skipped", "failed")


@dataclass(slots=True)
class ItemProblem:
    """One item that was skipped (bad input) or failed (to be retried)."""

    drive_id: str
    item_id: str
    name: str
    path: str
    stage: str
    reason: str
    message: str


@dataclass
class RunReport:
    """Counters and problems of one run, filled in by the pipeline."""

    mode: str
    run_id: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6])
    started_at: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    status: Literal["running", "ok", "item_failures", "aborted"] = "running"
    abort_reason: str | None = None
    libraries: dict[str, Counter[str]] = field(default_factory=dict)
    library_names: dict[str, str] = field(default_factory=dict)
    skipped: list[ItemProblem] = field(default_factory=list)
    failed: list[ItemProblem] = field(default_factory=list)
    unresolved_grants: dict[str, list[str]] = field(default_factory=dict)
    leased: list[str] = field(default_factory=list)
    resyncs: list[dict[str, str]] = field(default_factory=list)
    large_acls: dict[str, dict[str, int]] = field(default_factory=dict)
    rebuild: dict[str, object] = field(default_factory=dict)
    embedding: Counter[str] = field(default_factory=Counter)
    index: Counter[str] = field(default_factory=Counter)
    graph: dict[str, object] = field(default_factory=dict)
    duration_s: float = 0.0
    _t0: float = field(default_factory=time.monotonic, repr=False)

    def count(self, drive_id: str, kind: str, n: int = 1) -> None:
        """Add `n` to the counter `kind` of a library."""
        self.libraries.setdefault(drive_id, Counter())[kind] += n

    def skip(self, problem: ItemProblem) -> None:
        """Record an item skipped for its content (bad input): final until the file changes."""
        self.skipped.append(problem)
        self.count(problem.drive_id, "skipped")

    def fail(self, problem: ItemProblem) -> None:
        """Record an item that failed and is to be retried next run."""
        self.failed.append(problem)
        self.count(problem.drive_id, "failed")

    def finish(self, status: Literal["ok", "item_failures", "aborted"] | None = None, reason: str | None = None) -> None:
        """Close the report: duration and final status."""
        self.duration_s = round(time.monotonic() - self._t0, 3)
        if status is None:
            status = "item_failures" if self.failed else "ok"
        self.status = status
        self.abort_reason = reason

    @property
    def exit_code(self) -> int:
        """The process exit code that tells an operator (or a scheduler) what happened."""
        return {"ok": EXIT_OK, "item_failures": EXIT_ITEM_FAILURES, "aborted": EXIT_ABORTED}.get(self.status, EXIT_ABORTED)

    def as_dict(self) -> dict[str, object]:
        """The report as JSON-ready values."""
        return {
            "run_id": self.run_id,
            "mode": self.mode,
            "started_at": self.started_at,
            "status": self.status,
            "exit_code": self.exit_code,
            "abort_reason": self.abort_reason,
            "duration_s": self.duration_s,
            "libraries": {
                drive: {"name": self.library_names.get(drive, drive), **{k: counts.get(k, 0) for k in CHANGE_KINDS}}
                for drive, counts in self.libraries.items()
            },
            "skipped": [asdict(p) for p in self.skipped],
            "failed": [asdict(p) for p in self.failed],
            "unresolved_grants": self.unresolved_grants,
            "libraries_leased_elsewhere": self.leased,
            "resyncs": self.resyncs,
            "acls_over_native_limit": self.large_acls,
            "rebuild": self.rebuild,
            "graph": self.graph,
            "embedding": dict(self.embedding),
            "index": dict(self.index),
        }

    def write(self, folder: Path) -> Path:
        """Write `<run_id>.json` and `latest.json` atomically; returns the report's path."""
        folder.mkdir(parents=True, exist_ok=True)
        data = json.dumps(self.as_dict(), indent=2, sort_keys=False)
        path = folder / f"{self.run_id}.json"
        for target in (path, folder / "latest.json"):
            tmp = target.with_suffix(".tmp")
            tmp.write_text(data)
            os.replace(tmp, target)
        return path

    def totals(self) -> Counter[str]:
        """Counters summed over libraries."""
        total: Counter[str] = Counter()
        for counts in self.libraries.values():
            total.update(counts)
        return total
