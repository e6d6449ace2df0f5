"""Flat memory: spindex's peak resident memory for a full sync of 1,000 and of 10,000 documents.

    python -m benchmarks.memory [--quick] [--small N] [--large N]   (`make bench` runs it)

Each size gets its own sandbox and embeddings processes and its own spindex process (so that
one run's memory never counts in another's), with no latency and no budgets: only memory is
measured here, so the runs go as fast as the CPU allows. The figure is the peak RSS of the
spindex process (getrusage) and of its largest extraction worker (sampled VmHWM); what should
hold is that ten times the documents do not need much more memory. Results go to
`benchmarks/results/memory-latest.json`.
"""

from __future__ import annotations

import argparse
import tempfile
from typing import Any

from benchmarks.measure import table, write_result
from benchmarks.services import ROOT, Service
from benchmarks.throughput import _child

UNLIMITED = {
    "graph_ru_per_minute": None,
    "embedding_tokens_per_minute": None,
    "embedding_requests_per_minute": None,
}


def measure(documents: int, seed: int) -> dict[str, Any]:
    """One full sync of `documents` documents; its peak memory and pace."""
    work = tempfile.mkdtemp(prefix=f"spindex-mem-{documents}-")
    with Service.start("sandbox", {"documents": documents, "seed": seed}) as sandbox, Service.start(
        "embeddings", {"dimensions": 1536}
    ) as embeddings:
        result = _child(
            "benchmarks.spindex_run",
            {
                "sandbox": sandbox.info, "embeddings": embeddings.info, "data_dir": work, "mode": "full",
                "budget": UNLIMITED, "sync": {},
            },
        )  # fmt: skip
    return {
        "documents": result["items"]["created"],
        "seconds": result["seconds"],
        "chunks": result["chunks_in_index"],
        "peak_rss_mib": result["memory"],
        "status": result["status"],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Measure both sizes, print and write the ratio."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="300 and 1,500 documents")
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.quick:
        args.small, args.large = 300, 1_500
    small = measure(args.small, args.seed)
    print(f"{args.small} documents: peak RSS {small['peak_rss_mib']['main_mib']} MiB", flush=True)
    large = measure(args.large, args.seed)
    main_ratio = large["peak_rss_mib"]["main_mib"] / small["peak_rss_mib"]["main_mib"]
    worker_small = small["peak_rss_mib"]["largest_worker_mib"] or 1.0
    result = {
        "small": small,
        "large": large,
        "main_rss_ratio": round(main_ratio, 3),
        "worker_rss_ratio": round(large["peak_rss_mib"]["largest_worker_mib"] / worker_small, 3),
    }
    path = write_result("memory", result)
    rows = [("documents", "chunks", "seconds", "peak RSS MiB", "largest worker MiB")]
    for run in (small, large):
        rss = run["peak_rss_mib"]
        rows.append((str(run["documents"]), str(run["chunks"]), f"{run['seconds']:.0f}", f"{rss['main_mib']:.0f}", f"{rss['largest_worker_mib']:.0f}"))
    print(table(rows))
    print(f"peak RSS at {args.large} / at {args.small} documents: {main_ratio:.2f}x; written to {path.relative_to(ROOT)}")
    return result


if __name__ == "__main__":
    main()
