"""A fake OpenAI / Azure OpenAI embeddings endpoint on 127.0.0.1, for the real openai SDK.

    POST /v1/embeddings                                          (OpenAI)
    POST /openai/deployments/{deployment}/embeddings?api-version=...   (Azure OpenAI)

It checks the credential (`Authorization: Bearer <key>` or `api-key: <key>`), answers
deterministic vectors (the offline embedder's, so tests can predict them) in float or base64
(little-endian float32, the SDK's default) form, honours `dimensions`, reports
`usage.prompt_tokens`, and enforces the service's 2,048-inputs and 8,192-tokens-per-input
limits. Knobs simulate throttling and outages. Every accepted request is recorded.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Collection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from ingest.tokens import count_tokens
from ingest.embedding.offline import embed_text

_AZURE_PATH = re.compile(r"^/openai/deployments/([^/]+)/embeddings$")


class FakeEmbeddingsServer:
    """Context manager: `with FakeEmbeddingsServer(dimensions=8) as server: server.base_url`.

    Knobs (attributes, may be changed while running):
      keys             credentials accepted in either header
      latency_s        sleep before answering
      fail_status      answer every request with this status (OpenAI error JSON)
      rate_limit_times answer the next N requests with 429 and `Retry-After: retry_after`
      max_inputs       more inputs than this in one request is a 400 (the service's 2,048)
      max_input_tokens an input over this is a 400 naming the maximum context length
      wrong_dimensions answer vectors of this length instead, to test the client's check
      deployments      Azure deployment names that exist (None: any)
    Records: `requests` (path, JSON body) of answered requests, `inputs` (count), `headers`.
    """

    def __init__(
        self,
        dimensions: int = 16,
        *,
        latency_s: float = 0.0,
        fail_status: int | None = None,
        keys: Collection[str] = ("test-key",),
        rate_limit_times: int = 0,
        retry_after: str = "0.01",
        max_inputs: int = 2048,
        max_input_tokens: int = 8192,
        wrong_dimensions: int | None = None,
        deployments: Collection[str] | None = None,
    ) -> None:
        self.dimensions = dimensions
        self.latency_s = latency_s
        self.fail_status = fail_status
        self.keys = set(keys)
        self.rate_limit_times = rate_limit_times
        self.retry_after = retry_after
        self.max_inputs = max_inputs
        self.max_input_tokens = max_input_tokens
        self.wrong_dimensions = wrong_dimensions
        self.deployments = set(deployments) if deployments is not None else None
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.headers: list[dict[str, str]] = []
        self.inputs = 0
        self.attempts = 0  # every POST, refused ones included
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`: append `/v1` for OpenAI; Azure's endpoint as is."""
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeEmbeddingsServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                fake._handle(self)

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits up to one interval.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # --- request handling ----------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.attempts += 1
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        if self.latency_s:
            time.sleep(self.latency_s)
        refusal = self._refusal(handler) or self._invalid(raw)
        if refusal is not None:
            status, message, code = refusal
            retry = {"Retry-After": self.retry_after} if status == 429 or status >= 500 else None
            return _error(handler, status, message, code, retry)

        body = json.loads(raw)
        inputs = [body["input"]] if isinstance(body["input"], str) else body["input"]
        dims = self.wrong_dimensions or int(body.get("dimensions") or self.dimensions)
        base64_wanted = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(inputs):
            vector = embed_text(text, dims)
            encoded: object = (
                base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
                if base64_wanted
                else vector
            )
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        data.reverse()  # the service does not promise order; make clients sort by index
        tokens = sum(count_tokens(t) for t in inputs)
        with self._lock:
            self.requests.append((handler.path, body))
            self.headers.append({k.lower(): v for k, v in handler.headers.items()})
            self.inputs += len(inputs)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        _json(handler, 200, {"object": "list", "data": data, "model": body.get("model", ""), "usage": usage})

    def _refusal(self, handler: BaseHTTPRequestHandler) -> tuple[int, str, str | None] | None:
        """Route, api-version, deployment, credential and the failure knobs, in that order."""
        url = urlsplit(handler.path)
        azure = _AZURE_PATH.match(url.path)
        if url.path != "/v1/embeddings" and not azure:
            return 404, f"no route {url.path}", "not_found"
        if azure and not parse_qs(url.query).get("api-version"):
            return 400, "api-version query parameter is required", "missing_api_version"
        if azure and self.deployments is not None and azure.group(1) not in self.deployments:
            return 404, "The API deployment for this resource does not exist.", "DeploymentNotFound"
        if not self._authorised(handler):
            # Like OpenAI, echo a masked key, so clients can be checked for not passing it on.
            return 401, "Incorrect API key provided: te**ey.", "invalid_api_key"
        with self._lock:
            if self.rate_limit_times > 0:
                self.rate_limit_times -= 1
                return 429, "Rate limit reached", "rate_limit_exceeded"
        if self.fail_status is not None:
            return self.fail_status, "The server had an error", "server_error"
        return None

    def _invalid(self, raw: bytes) -> tuple[int, str, str | None] | None:
        """The service's 400s: bad body, too many inputs, an input over the token limit."""
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, "body is not JSON", "invalid_json"
        inputs = body.get("input") if isinstance(body, dict) else None
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) and t for t in inputs):
            return 400, "'$.input' is invalid.", "invalid_input"
        if len(inputs) > self.max_inputs:
            return 400, f"Too many inputs. The max number of inputs is {self.max_inputs}.", "too_many_inputs"
        for text in inputs:
            count = count_tokens(text)
            if count > self.max_input_tokens:
                message = (
                    f"This model's maximum context length is {self.max_input_tokens} tokens, "
                    f"however you requested {count} tokens."
                )
                return 400, message, None
        return None

    def _authorised(self, handler: BaseHTTPRequestHandler) -> bool:
        bearer = handler.headers.get("Authorization", "")
        token = bearer[7:] if bearer.startswith("Bearer ") else None
        return token in self.keys or handler.headers.get("api-key") in self.keys


def _error(
    handler: BaseHTTPRequestHandler,
    status: int,
    message: str,
    code: str | None,
    headers: dict[str, str] | None = None,
) -> None:
    kind = "requests" if status == 429 else "server_error" if status >= 500 else "invalid_request_error"
    error = {"message": message, "type": kind, "param": None, "code": code}
    _json(handler, status, {"error": error}, headers)


def _json(
    handler: BaseHTTPRequestHandler,
    status: int,
    payload: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> None:
    body = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("x-request-id", f"req-{id(payload):x}")
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(body)
