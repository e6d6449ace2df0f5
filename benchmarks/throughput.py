"""Throughput near the rate-limit bound: spindex's full and delta syncs against a budgeted tenant.

    python -m benchmarks.throughput [--quick] [--documents N] [...]   (`make bench` runs it)

1. A sandbox tenant of `--documents` generated documents (benchmarks/corpus.py) is served with
   `--latency-ms` per request and a server-side RU meter of `--ru-per-minute`; an embeddings
   endpoint answers after `--embed-latency-ms` per request, metered at `--tpm` / `--rpm`.
2. (a) spindex runs a full sync in its own process (`ingest.runs.run_sync`, the openai
   provider, the local index), paced by the same budgets; then `--change-share` of the
   documents get one paragraph rewritten and spindex runs a delta sync.
3. (b) the naive baseline (benchmarks/baseline.py) indexes a sample of the documents.
4. (c) the bound: the documents per second the tightest budget allows for the work each
   document needs (Graph RU, embedding tokens and requests per document as spindex spent
   them), and the latency bound (`--concurrency` documents in flight, each waiting in turn for
   its share of permission reads, its download and its embedding request).

Results go to `benchmarks/results/throughput-latest.json` (and a time-stamped copy).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.measure import load_average, table, write_result
from benchmarks.services import ROOT, Service


def _child(module: str, config: dict[str, Any]) -> dict[str, Any]:
    """Run `python -m module <config>` and return the JSON it wrote."""
    out = Path(config["data_dir"]) / f"{module.rsplit('.', 1)[-1]}-{config.get('mode', 'run')}.json"
    config = {**config, "out": str(out)}
    subprocess.run([sys.executable, "-m", module, json.dumps(config)], cwd=ROOT, check=True)
    return json.loads(out.read_text())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's knobs (defaults: the documented benchmark)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="300 documents, a 30-document baseline: for development")
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--baseline-documents", type=int, default=200, help="size of the baseline's sample")
    parser.add_argument("--latency-ms", type=float, default=80.0, help="sandbox latency per request")
    parser.add_argument("--embed-latency-ms", type=float, default=250.0, help="embeddings latency per request")
    parser.add_argument("--ru-per-minute", type=int, default=6000, help="Graph budget (6,000: a tenant of 50k+ licences)")
    parser.add_argument("--tpm", type=int, default=1_000_000, help="embedding tokens per minute")
    parser.add_argument("--rpm", type=int, default=6_000, help="embedding requests per minute")
    parser.add_argument("--burst-s", type=float, default=2.0, help="seconds of budget spindex may spend at once")
    parser.add_argument("--concurrency", type=int, default=8, help="sync.concurrency (spindex's default: 8)")
    parser.add_argument("--linger-ms", type=float, default=0.0, help="sync.embed_linger_ms (0: no shared requests)")
    parser.add_argument("--processes", type=int, default=None, help="sync.extract_processes (default: one per core)")
    parser.add_argument("--change-share", type=float, default=0.01, help="share of documents edited before the delta")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.quick:
        args.documents, args.baseline_documents = min(args.documents, 300), min(args.baseline_documents, 30)
    return args


def bound(
    args: argparse.Namespace, docs: int, ru: float, tokens: float, requests: float, graph_calls: float
) -> dict[str, float]:
    """Documents per second each budget allows for this work per document, and the tightest.

    `graph_calls` are the permission reads and downloads a document waits for in turn before
    its embedding request (a permission read shared by a folder of files counts once).
    """
    per_doc = {"ru": ru / docs, "tokens": tokens / docs, "requests": requests / docs}
    chain_s = graph_calls / docs * args.latency_ms / 1000 + per_doc["requests"] * args.embed_latency_ms / 1000
    limits = {
        "graph_ru": args.ru_per_minute / 60 / per_doc["ru"],
        "embedding_tpm": args.tpm / 60 / per_doc["tokens"] if per_doc["tokens"] else float("inf"),
        "embedding_rpm": args.rpm / 60 / per_doc["requests"] if per_doc["requests"] else float("inf"),
        "latency": args.concurrency / chain_s,
    }
    tightest = min(limits, key=lambda k: limits[k])
    return {**{k: round(v, 3) for k, v in limits.items()}, "bound": round(limits[tightest], 3), "tightest": tightest}  # type: ignore[dict-item]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the whole benchmark; returns the result document."""
    work = Path(tempfile.mkdtemp(prefix="spindex-bench-"))
    sandbox_config = {"documents": args.documents, "seed": args.seed, "latency_s": args.latency_ms / 1000, "ru_per_minute": args.ru_per_minute}
    embed_config = {"latency_s": args.embed_latency_ms / 1000, "tpm": args.tpm, "rpm": args.rpm, "dimensions": 1536}
    sync = {"concurrency": args.concurrency, "embed_linger_ms": args.linger_ms}
    if args.processes is not None:
        sync["extract_processes"] = args.processes
    budget = {
        "graph_ru_per_minute": args.ru_per_minute,
        "graph_burst_seconds": args.burst_s,
        "embedding_tokens_per_minute": args.tpm,
        "embedding_requests_per_minute": args.rpm,
        "embedding_burst_seconds": args.burst_s,
    }
    print(f"generating and serving {args.documents} documents ...", flush=True)
    with Service.start("sandbox", sandbox_config) as sandbox, Service.start("embeddings", embed_config) as embeddings:
        base = {"sandbox": sandbox.info, "embeddings": embeddings.info, "data_dir": str(work), "budget": budget, "sync": sync}

        def measured(module: str, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
            sandbox.call("POST", "/_bench/reset")
            embeddings.call("POST", "/_bench/reset")
            result = _child(module, config)
            return result, sandbox.call("GET", "/_bench/stats"), embeddings.call("GET", "/_bench/stats")

        print("spindex: full sync ...", flush=True)
        full, full_graph, full_embed = measured("benchmarks.spindex_run", {**base, "mode": "full"})
        changed = sandbox.call("POST", "/_bench/edit", {"share": args.change_share})["changed"]
        print(f"spindex: delta sync after {len(changed)} documents changed ...", flush=True)
        delta, delta_graph, delta_embed = measured("benchmarks.spindex_run", {**base, "mode": "delta"})
        print(f"baseline: {args.baseline_documents} documents, one at a time ...", flush=True)
        baseline, base_graph, base_embed = measured(
            "benchmarks.baseline", {**base, "mode": "baseline", "documents": args.baseline_documents}
        )

    docs = full["items"]["created"]
    docs_per_s = docs / full["seconds"]
    calls = full_graph["requests"].get("permissions", 0) + full_graph["requests"].get("download", 0)
    limits = bound(args, docs, full_graph["ru"], full_embed.get("tokens", 0), full_embed.get("requests", 0), calls)
    changed_docs = max(1, len(changed))
    return {
        "parameters": {k: v for k, v in vars(args).items()},
        "full": {
            "documents": docs,
            "seconds": full["seconds"],
            "cpu_seconds_main": full.get("cpu_seconds_main"),
            "docs_per_s": round(docs_per_s, 3),
            "ratio_to_bound": round(docs_per_s / limits["bound"], 3),
            "speedup_over_baseline": round(docs_per_s / baseline["docs_per_s"], 2),
            "graph_ru_per_doc": round(full_graph["ru"] / docs, 3),
            "embedding_tokens_per_doc": round(full_embed.get("tokens", 0) / docs, 1),
            "embedding_requests_per_doc": round(full_embed.get("requests", 0) / docs, 3),
            "peak_rss_mib": full["memory"],
            "throttled": {"graph": full_graph["throttled"], "embeddings": full_embed.get("throttled", 0)},
            "spindex_report": {"graph": full["graph"], "embedding": full["embedding"], "status": full["status"]},
            "load_average": full["load_average"],
        },
        "bound": limits,
        "delta": {
            "changed_documents": len(changed),
            "seconds": delta["seconds"],
            "changed_docs_per_s": round(len(changed) / delta["seconds"], 3),
            "graph_ru_per_changed_doc": round(delta_graph["ru"] / changed_docs, 3),
            "graph_ru_by_kind": delta_graph["ru_by_kind"],
            "embedding_tokens": delta_embed.get("tokens", 0),
            "changed_chunks": delta["new_chunks"],
            "changed_chunk_tokens": delta["new_chunk_tokens"],
            "tokens_vs_changed_chunk_tokens": round(delta_embed.get("tokens", 0) / max(1, delta["new_chunk_tokens"]), 3),
            "items": delta["items"],
            "peak_rss_mib": delta["memory"],
            "throttled": {"graph": delta_graph["throttled"], "embeddings": delta_embed.get("throttled", 0)},
        },
        "baseline": {
            **baseline,
            "graph_ru_per_doc": round(base_graph["ru"] / max(1, baseline["documents"]), 3),
            "embedding_tokens_per_doc": round(base_embed.get("tokens", 0) / max(1, baseline["documents"]), 1),
        },
        "load_average_end": load_average(),
    }


def render(result: dict[str, Any]) -> str:
    """The result as the printed table."""
    full, delta, base, limits = result["full"], result["delta"], result["baseline"], result["bound"]
    rows = [
        ("run", "docs/s", "vs bound", "vs baseline", "RU/doc", "tokens/doc", "peak RSS MiB"),
        (
            f"spindex full ({full['documents']} docs)", f"{full['docs_per_s']:.2f}", f"{full['ratio_to_bound']:.0%}",
            f"{full['speedup_over_baseline']:.1f}x", f"{full['graph_ru_per_doc']:.2f}", f"{full['embedding_tokens_per_doc']:.0f}",
            f"{full['peak_rss_mib']['main_mib']:.0f} (+{full['peak_rss_mib']['largest_worker_mib']:.0f}/worker)",
        ),
        (
            f"baseline ({base['documents']}-doc sample)", f"{base['docs_per_s']:.2f}", "", "1.0x",
            f"{base['graph_ru_per_doc']:.2f}", f"{base['embedding_tokens_per_doc']:.0f}", f"{base['memory']['main_mib']:.0f}",
        ),
        (
            f"bound ({limits['tightest']})", f"{limits['bound']:.2f}", "100%", "", "", "", "",
        ),
        (
            f"spindex delta ({delta['changed_documents']} changed)", f"{delta['changed_docs_per_s']:.2f}", "", "",
            f"{delta['graph_ru_per_changed_doc']:.2f}/changed",
            f"{delta['embedding_tokens']} ({delta['tokens_vs_changed_chunk_tokens']:.2f}x changed)",
            f"{delta['peak_rss_mib']['main_mib']:.0f}",
        ),
    ]  # fmt: skip
    budgets = ", ".join(f"{k} {v}" for k, v in limits.items() if k not in ("bound", "tightest"))
    return table(rows) + f"\nbounds (docs/s): {budgets}"


def main(argv: list[str] | None = None) -> None:
    """Run, print the table, write the JSON."""
    args = parse_args(argv)
    result = run(args)
    path = write_result("throughput", result)
    print(render(result))
    print(f"written to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
