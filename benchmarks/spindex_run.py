"""One spindex sync (full or delta) in this process, as `ingest.runs.run_sync` runs it, measured.

    python -m benchmarks.spindex_run '<json config>'   -> writes the result JSON to config["out"]

The config names the running services (sandbox, embeddings), the data folder (kept between a
full run and the delta run after it), the budgets and the sync settings. Embeddings go through
the openai SDK (provider `openai`) to the benchmark's endpoint. A delta run also reports which
chunks it wrote that the index did not hold before (their texts' tokens are what an ideal run
embeds).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.measure import PeakMemory, Stopwatch, load_average


def settings_for(config: dict[str, Any]) -> Any:
    """spindex Settings for the benchmark's services, budgets and sync knobs."""
    from ingest.config import load_settings

    sandbox, embeddings = config["sandbox"], config["embeddings"]
    return load_settings(
        None,
        data_dir=Path(config["data_dir"]),
        graph={
            "auth": "sandbox",
            "base_url": sandbox["graph_url"],
            "tenant_id": sandbox["tenant_id"],
            "sharepoint_url": sandbox["base_url"],
        },
        embedding={
            "provider": "openai",
            "model": "text-embedding-3-small",
            "dimensions": config.get("dimensions", 1536),
            "endpoint": embeddings["base_url"] + "/v1",
            "api_key": embeddings["key"],
        },
        budget=config["budget"],
        sync=config.get("sync", {}),
    )


def _rows(index_dir: Path, columns: str) -> list[tuple[Any, ...]]:
    """`columns` of every chunk of the local index (read after the sync's memory is measured)."""
    rows: list[tuple[Any, ...]] = []
    for path in index_dir.glob("*.sqlite"):
        with contextlib.closing(sqlite3.connect(path)) as db:
            try:
                rows.extend(db.execute(f"SELECT {columns} FROM docs"))
            except sqlite3.Error:
                continue
    return rows


def main(config: dict[str, Any]) -> dict[str, Any]:
    """Run one sync and return its measurements."""
    from ingest.runs import run_sync
    from ingest.tokens import count_tokens

    settings = settings_for(config)
    full = config["mode"] == "full"
    known = set() if full else {digest for (digest,) in _rows(settings.index_dir, "content_hash")}
    load_before = load_average()
    cpu_before = time.process_time()
    with PeakMemory() as memory, Stopwatch() as watch:
        report = asyncio.run(run_sync(settings, full=full))
    cpu_s = time.process_time() - cpu_before  # of this process: the event loop (workers excluded)
    peak = memory.result()  # before this process reads the index back for the figures below
    chunks = 0
    new_chunks: list[str] = []
    for digest, text in _rows(settings.index_dir, "content_hash, NULL" if full else "content_hash, content"):
        chunks += 1
        if not full and digest not in known:
            new_chunks.append(text)
    totals = report.totals()
    return {
        "mode": config["mode"],
        "status": report.status,
        "seconds": round(watch.seconds, 3),
        "cpu_seconds_main": round(cpu_s, 3),
        "items": {kind: totals.get(kind, 0) for kind in ("created", "content_changed", "unchanged", "skipped", "failed")},
        "graph": report.graph,
        "embedding": dict(report.embedding),
        "index": dict(report.index),
        "memory": peak,
        "new_chunks": len(new_chunks),
        "new_chunk_tokens": sum(count_tokens(text) for text in new_chunks),
        "chunks_in_index": chunks,
        "load_average": [load_before, load_average()],
        "failed": [f"{p.name}: {p.reason}" for p in report.failed[:5]],
    }


if __name__ == "__main__":
    cfg = json.loads(sys.argv[1])
    Path(cfg["out"]).write_text(json.dumps(main(cfg), indent=2))
