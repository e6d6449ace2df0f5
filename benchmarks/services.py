"""The services a benchmark talks to, each in its own process so that they do not share the
measured process's interpreter lock or memory:

    sandbox      the sandbox tenant (sandbox.server) holding a generated corpus, with a latency
                 per request and a *server-side* RU meter: every Graph request is costed as the
                 throttling guide lists (a $batch sub-request by itself), and a request beyond
                 the per-minute budget is answered 429 with Retry-After, as SharePoint does.
    embeddings   an OpenAI-compatible `POST /v1/embeddings` with a latency per request and
                 TPM/RPM meters that answer 429 with Retry-After when exceeded.

Both answer `GET /_bench/stats` (what was spent), the sandbox also `POST /_bench/edit` (edit
one paragraph of a share of the documents, re-rendered in their format) and both
`POST /_bench/reset`. `Service.start(kind, config)` runs one and returns a handle.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SERVER_BURST_S = 10.0  # the services let 10 s of budget go at once (spindex paces tighter)


class Meter:
    """A thread-safe per-minute budget that refuses (rather than delays) what exceeds it."""

    def __init__(self, per_minute: float | None, burst_s: float = SERVER_BURST_S) -> None:
        self.rate = per_minute / 60 if per_minute else None
        self.capacity = self.rate * burst_s if self.rate else 0.0
        self.level = self.capacity
        self.stamp = time.monotonic()
        self.spent = 0.0
        self.refused = 0
        self.lock = threading.Lock()

    def charge(self, amount: float) -> float | None:
        """Spend `amount` and return None, or refuse it and return the seconds to wait."""
        with self.lock:
            if self.rate is None:
                self.spent += amount
                return None
            now = time.monotonic()
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now
            if amount > self.level and not (amount > self.capacity and self.level >= self.capacity):
                self.refused += 1
                return (amount - self.level) / self.rate
            self.level -= amount
            self.spent += amount
            return None


def graph_cost(method: str, path: str, query: dict[str, str]) -> tuple[int, str]:
    """(RU, kind) of one Graph request (path relative to /v1.0), as the throttling guide lists them."""
    lowered = path.lower()
    if lowered == "/$batch":
        return 0, "batch"  # its sub-requests are costed one by one as they are served
    if "/delta" in lowered:
        return (1, "delta") if ("token" in query or "token=" in lowered) else (2, "delta_initial")
    if lowered.endswith("/permissions"):
        return 5, "permissions"
    if lowered.endswith("/content"):
        return 0, "content_redirect"  # the download itself is costed at the pre-authenticated URL
    listings = ("/children", "/drives", "getallsites", "/graph.sitepage", "/transitivememberof", "/owners", "/members")
    if lowered.endswith(listings) or "/microsoft.graph.group" in lowered or lowered.rstrip("/") == "/sites":
        return 2, "listing"
    return 1, "single_get"


# --- the sandbox ---------------------------------------------------------------------------------


def _sandbox(config: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    from benchmarks import corpus
    from sandbox.http_types import Response, json_response
    from sandbox.server import SandboxServer
    from sandbox.sp_rest import REST_PATH

    tenant, placed = corpus.build_tenant(config["documents"], config.get("seed", 1))
    meter = Meter(config.get("ru_per_minute"))
    costs: Counter[str] = Counter()
    costs_lock = threading.Lock()

    def charge(cost: int, kind: str) -> float | None:
        wait = meter.charge(cost)
        if wait is None:
            with costs_lock:
                costs[kind] += cost
        return wait

    def refused(wait: float) -> Response:
        return json_response(
            429,
            {"error": {"code": "TooManyRequests", "message": "resource unit budget exceeded (benchmark meter)"}},
            {"Retry-After": str(max(1, math.ceil(wait)))},
        )

    class Metered(SandboxServer):
        def dispatch(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
            path = target.partition("?")[0]
            if path.startswith("/_bench/"):
                return control(method, path, body)
            if path.startswith("/_download/") or (REST_PATH.match(path) and method == "GET"):
                cost, kind = (1, "download") if path.startswith("/_download/") else (2, "sharepoint_rest")
                wait = charge(cost, kind)
                if wait is not None:
                    server.stats.count_throttled()
                    return refused(wait)
            return super().dispatch(method, target, headers, body)

    server = Metered(tenant)
    server.faults.latency_s = config.get("latency_s", 0.0)
    inner = server._app.handle

    def handle(request: Any) -> Response:
        cost, kind = graph_cost(request.method, request.path, request.query)
        if cost:
            wait = charge(cost, kind)
            if wait is not None:
                server.stats.count_throttled()
                return refused(wait)
        return inner(request)

    server._app.handle = handle  # type: ignore[method-assign]
    edits = random.Random(config.get("seed", 1) * 7919)

    def control(method: str, path: str, body: bytes) -> Response:
        if path == "/_bench/stats":
            snapshot = server.stats.snapshot()
            with costs_lock:
                by_kind = dict(costs)
            return json_response(200, {"ru": meter.spent, "refused": meter.refused, "ru_by_kind": by_kind, **snapshot})
        if path == "/_bench/reset" and method == "POST":
            server.stats.reset()
            with meter.lock, costs_lock:
                meter.spent, meter.refused = 0.0, 0
                costs.clear()
            return json_response(200, {})
        if path == "/_bench/edit" and method == "POST":
            share = json.loads(body or b"{}").get("share", 0.01)
            chosen = sorted(edits.sample(range(len(placed)), max(1, round(share * len(placed)))))
            changed = []
            for n in chosen:
                drive_id, item_id, spec = placed[n]
                spec = corpus.edit_one_paragraph(spec, edits)
                placed[n] = (drive_id, item_id, spec)
                tenant.update_content(drive_id, item_id, corpus.render(spec))
                changed.append({"drive_id": drive_id, "item_id": item_id, "name": spec.name})
            return json_response(200, {"changed": changed})
        return json_response(404, {"error": {"code": "notFound", "message": path}})

    info = {
        "base_url": server.base_url,
        "graph_url": server.graph_url,
        "tenant_id": tenant.tenant_id,
        "documents": len(placed),
    }
    return server, info


# --- the embeddings endpoint ------------------------------------------------------------------------


def _embeddings(config: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    from ingest.tokens import get_encoding

    encoding = get_encoding()
    latency = config.get("latency_s", 0.0)
    dimensions = config.get("dimensions", 1536)
    tokens_meter = Meter(config.get("tpm"))
    requests_meter = Meter(config.get("rpm"))
    stats: Counter[str] = Counter()
    lock = threading.Lock()

    def vector(text: str, dims: int) -> np.ndarray:
        seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
        v = np.random.default_rng(seed).standard_normal(dims).astype("<f4")
        return v / np.linalg.norm(v)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

        def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/_bench/stats":
                with lock:
                    self._send(200, {**stats, "refused": tokens_meter.refused + requests_meter.refused})
            else:
                self._send(404, {"error": {"message": self.path}})

        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/_bench/reset":
                with lock:
                    stats.clear()
                self._send(200, {})
                return
            if self.path != "/v1/embeddings":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            if self.headers.get("Authorization") != f"Bearer {config.get('key', 'bench-key')}":
                self._send(401, {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}})
                return
            body = json.loads(raw)
            inputs = [body["input"]] if isinstance(body["input"], str) else body["input"]
            tokens = sum(len(encoding.encode_ordinary(text)) for text in inputs)
            for meter, amount in ((requests_meter, 1), (tokens_meter, tokens)):
                wait = meter.charge(amount)
                if wait is not None:
                    with lock:
                        stats["throttled"] += 1
                    headers = {"retry-after-ms": str(int(wait * 1000) + 1), "Retry-After": str(max(1, math.ceil(wait)))}
                    self._send(429, {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}, headers)
                    return
            if latency:
                time.sleep(latency)
            dims = int(body.get("dimensions") or dimensions)
            as_base64 = body.get("encoding_format") == "base64"
            data = []
            for i, text in enumerate(inputs):
                v = vector(text, dims)
                data.append({
                    "object": "embedding", "index": i,
                    "embedding": base64.b64encode(v.tobytes()).decode() if as_base64 else v.tolist(),
                })  # fmt: skip
            with lock:
                stats["requests"] += 1
                stats["inputs"] += len(inputs)
                stats["tokens"] += tokens
            usage = {"prompt_tokens": tokens, "total_tokens": tokens}
            self._send(200, {"object": "list", "data": data, "model": body.get("model", ""), "usage": usage})

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    server = _Threaded(httpd)
    host, port = httpd.server_address[:2]
    return server, {"base_url": f"http://{host}:{port}", "key": config.get("key", "bench-key")}


class _Threaded:
    def __init__(self, httpd: ThreadingHTTPServer) -> None:
        self.httpd = httpd

    def start(self) -> None:
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()


def _serve(kind: str, config: dict[str, Any]) -> None:
    """Entry point of a service process: serve until the parent closes our stdin."""
    server, info = (_sandbox if kind == "sandbox" else _embeddings)(config)
    server.start()
    print(json.dumps(info), flush=True)
    sys.stdin.read()
    server.stop()


class Service:
    """A running service process and how to reach it."""

    def __init__(self, process: subprocess.Popen[str], info: dict[str, Any]) -> None:
        self.process = process
        self.info = info

    @classmethod
    def start(cls, kind: str, config: dict[str, Any]) -> Service:
        """Start service `kind` ("sandbox" or "embeddings") with `config`; returns once it listens."""
        process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.services", kind, json.dumps(config)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            process.wait()
            raise RuntimeError(f"the {kind} service did not start (exit {process.returncode})")
        return cls(process, json.loads(line))

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT"""
        return str(self.info["base_url"])

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """A control request (`/_bench/...`) and its JSON answer."""
        data = json.dumps(body or {}).encode() if method == "POST" else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        """End the service process (it exits when its stdin closes)."""
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    _serve(sys.argv[1], json.loads(sys.argv[2]))
