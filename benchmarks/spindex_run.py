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
from collections.abc import AsyncIterator
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


def _wire_budgets() -> list[str]:
    """Attach the configured budgets if `open_parts` does not (yet) build them itself."""
    import ingest.runs as runs
    from ingest.budget import embedding_budget, graph_budget

    original = runs.open_parts
    wired: list[str] = []

    @contextlib.asynccontextmanager
    async def open_parts(settings: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async with original(settings, **kwargs) as parts:
            if parts.graph.budget is None and settings.budget.graph_ru_per_minute:
                parts.graph.budget = graph_budget(settings.budget)
                wired.append("graph")
            if getattr(parts.embedder, "budget", "n/a") is None:
                parts.embedder.budget = embedding_budget(settings.budget)
                wired.append("embedding")
            yield parts

    runs.open_parts = open_parts  # type: ignore[assignment]
    return wired


def _chunks(index_dir: Path) -> dict[str, tuple[str, str]]:
    """Chunk key -> (content hash, text) of the local index behind the alias."""
    found: dict[str, tuple[str, str]] = {}
    for path in index_dir.glob("*.sqlite"):
        with contextlib.closing(sqlite3.connect(path)) as db:
            try:
                rows = db.execute("SELECT id, content_hash, content FROM docs").fetchall()
            except sqlite3.Error:
                continue
        found.update({key: (digest, text) for key, digest, text in rows})
    return found


def main(config: dict[str, Any]) -> dict[str, Any]:
    """Run one sync and return its measurements."""
    from ingest.chunking import count_tokens
    from ingest.runs import run_sync

    settings = settings_for(config)
    wired = _wire_budgets()
    full = config["mode"] == "full"
    before = {} if full else _chunks(settings.index_dir)
    load_before = load_average()
    with PeakMemory() as memory, Stopwatch() as watch:
        report = asyncio.run(run_sync(settings, full=full))
    after = _chunks(settings.index_dir)
    known = {digest for digest, _ in before.values()}
    new_chunks = [text for key, (digest, text) in after.items() if digest not in known]
    totals = report.totals()
    return {
        "mode": config["mode"],
        "status": report.status,
        "seconds": round(watch.seconds, 3),
        "items": {kind: totals.get(kind, 0) for kind in ("created", "content_changed", "unchanged", "skipped", "failed")},
        "graph": report.graph,
        "embedding": dict(report.embedding),
        "index": dict(report.index),
        "memory": memory.result(),
        "budgets_attached_by_benchmark": wired,
        "new_chunks": len(new_chunks),
        "new_chunk_tokens": sum(count_tokens(text) for text in new_chunks),
        "chunks_in_index": len(after),
        "load_average": [load_before, load_average()],
        "failed": [f"{p.name}: {p.reason}" for p in report.failed[:5]],
    }


if __name__ == "__main__":
    cfg = json.loads(sys.argv[1])
    Path(cfg["out"]).write_text(json.dumps(main(cfg), indent=2))
