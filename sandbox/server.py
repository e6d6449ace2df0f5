"""The sandbox tenant over HTTP: Graph v1.0, SharePoint REST, downloads and a token endpoint.

    with SandboxServer(load_tenant()) as server:
        server.graph_url      # http://127.0.0.1:PORT/v1.0   (adapter.base_url for msgraph-sdk)
        server.token_url      # POST client credentials here (client_id "sandbox-client",
                              # client_secret "sandbox-secret" unless configured otherwise)
        server.issue_token()  # or take a bearer token directly
        server.faults.throttle_rate = 0.2
        server.stats.snapshot()

Routes:
    POST /{tenantId}/oauth2/v2.0/token            client credentials -> bearer token
    GET  /{tenantId}/v2.0/.well-known/openid-configuration
    *    /v1.0/...                                Graph (sandbox.graph), bearer token required
    GET  /sites/{path}/_api/...                   SharePoint REST (sandbox.sp_rest), bearer token required
    GET  /_download/{opaque}                      pre-authenticated download, `Range` supported

Stats kinds: delta, permissions, download, page, site, drive, batch, user, sharepoint_rest,
other. `download` counts `/content` redirects and `/_download` fetches alike; `downloads` counts
the file bodies actually served, `bytes_downloaded` their bytes. Item metadata and children are
`other`. `$batch` counts once as `batch` and each sub-request under its own kind.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from sandbox.auth import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, TokenIssuer
from sandbox.content import mime_type_for
from sandbox.graph import GraphApp
from sandbox.graph_common import ALL_PERMISSIONS
from sandbox.http_types import Request, Response, json_response, parse_query
from sandbox.model import Node
from sandbox.sp_rest import REST_PATH, handle_rest, rest_error
from sandbox.stats import KINDS, Faults, ServerStats
from sandbox.tenant import Tenant, load_tenant

__all__ = ["SandboxServer", "Faults", "ServerStats", "KINDS", "DEFAULT_CLIENT_ID", "DEFAULT_CLIENT_SECRET"]

_TOKEN_PATH = re.compile(r"^/(?P<tenant>[^/]+)/oauth2/v2\.0/token$")
_OIDC_PATH = re.compile(r"^/(?P<tenant>[^/]+)/(?:v2\.0/)?\.well-known/openid-configuration$")
_RANGE = re.compile(r"^bytes=(?P<start>\d*)-(?P<end>\d*)$")


class SandboxServer:
    """Serves one tenant on `host:port` (port 0 picks a free one) from daemon threads."""

    def __init__(
        self,
        tenant: Tenant | str | Path = "demo",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        credentials: dict[str, str] | None = None,
        granted_permissions: set[str] | frozenset[str] | None = None,
        seed: int = 0,
    ) -> None:
        self.tenant = tenant if isinstance(tenant, Tenant) else load_tenant(tenant)
        self.auth = TokenIssuer(self.tenant, credentials)
        self.granted_permissions: set[str] = set(ALL_PERMISSIONS if granted_permissions is None else granted_permissions)
        self.stats = ServerStats()
        self.faults = Faults(seed=seed)
        self._signing_key = secrets.token_bytes(32)
        self._app = GraphApp(self)
        self._httpd = ThreadingHTTPServer((host, port), _handler_class(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://{self._httpd.server_address[0]}:{self.port}"

    @property
    def graph_url(self) -> str:
        """The Graph v1.0 root, for `GraphRequestAdapter.base_url`."""
        return self.base_url + "/v1.0"

    @property
    def token_url(self) -> str:
        """The client-credentials token endpoint of this tenant."""
        return f"{self.base_url}/{self.tenant.tenant_id}/oauth2/v2.0/token"

    @property
    def authority_url(self) -> str:
        """`base_url/{tenantId}`, the stand-in for `https://login.microsoftonline.com/{tenantId}`."""
        return f"{self.base_url}/{self.tenant.tenant_id}"

    @property
    def sharepoint_url(self) -> str:
        """Stands in for `https://{tenant}.sharepoint.com`: SharePoint REST lives below it."""
        return self.base_url

    def start(self) -> SandboxServer:
        """Start serving in a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="sandbox-server", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted."""
        self._httpd.serve_forever()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # --- tokens -------------------------------------------------------------------------------

    def issue_token(self) -> str:
        """A fresh bearer token, as the token endpoint would give one."""
        return self.auth.issue()

    def revoke_tokens(self) -> None:
        """Invalidate every token issued so far (requests with them get 401)."""
        self.auth.revoke_all()

    def token_valid(self, authorization: str) -> bool:
        """True for `Bearer <a token this server issued>`."""
        return self.auth.valid(authorization)

    # --- downloads ------------------------------------------------------------------------------

    def download_url(self, node: Node) -> str:
        """The pre-authenticated URL of an item's content (like `@microsoft.graph.downloadUrl`)."""
        payload = base64.urlsafe_b64encode(json.dumps([node.drive_id, node.item_id]).encode()).decode().rstrip("=")
        return f"{self.base_url}/_download/{payload}.{self._sign(payload)}"

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._signing_key, payload.encode(), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(digest).decode()

    def _download(self, opaque: str, headers: dict[str, str], method: str) -> Response:
        payload, _, signature = opaque.partition(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            return json_response(401, {"error": {"code": "unauthenticated", "message": "The download URL is not valid."}})
        drive_id, item_id = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        with self.tenant.lock:
            try:
                node = self.tenant.node(drive_id, item_id)
            except KeyError:
                node = None
            if node is None or node.deleted or node.content is None:
                return json_response(404, {"error": {"code": "itemNotFound", "message": "The item no longer exists."}})
            content, name, etag = node.content, node.name, node.ctag
        size = content.size
        start, end, status = 0, size - 1, 200
        wanted = headers.get("range", "")
        match = _RANGE.match(wanted.strip()) if wanted else None
        if match and (match["start"] or match["end"]):
            if match["start"]:
                start = int(match["start"])
                end = min(int(match["end"]), size - 1) if match["end"] else size - 1
            else:
                start = max(0, size - int(match["end"]))
            if start >= size or start > end:
                return Response(416, {"Content-Range": f"bytes */{size}", "Content-Length": "0"})
            status = 206
        response_headers = {
            "Content-Type": mime_type_for(name),
            "Accept-Ranges": "bytes",
            "ETag": etag,
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
        }
        if status == 206:
            response_headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = max(0, end - start + 1)
        if method == "HEAD":
            return Response(status, response_headers, stream=iter(()), length=length)
        self.stats.count_download()
        return Response(status, response_headers, stream=self._counted(content.iter_bytes(start, end + 1)), length=length)

    def _counted(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.stats.add_bytes(len(chunk))
            yield chunk

    # --- dispatch -------------------------------------------------------------------------------

    def dispatch(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        """Serve one HTTP request (the socket layer calls this; tests may too)."""
        path, _, query = target.partition("?")
        if path == "/v1.0" or path.startswith("/v1.0/"):
            if not self.token_valid(headers.get("authorization", "")):
                return self._unauthorized()
            self._delay()
            return self._app.handle(Request(method, path[len("/v1.0") :] or "/", parse_query(query), headers, body))
        if path.startswith("/_download/") and method in ("GET", "HEAD"):
            self._delay()
            self.stats.count("download")
            return self._download(path[len("/_download/") :], headers, method)
        if REST_PATH.match(path) and method == "GET":
            if not self.token_valid(headers.get("authorization", "")):
                return self._unauthorized()
            self._delay()
            self.stats.count("sharepoint_rest")
            if self.faults.throttle_sharepoint_rest and self.faults.should_throttle():
                self.stats.count_throttled()
                throttled = rest_error(429, "The request has been throttled (sandbox throttle).")
                throttled.headers["Retry-After"] = str(self.faults.retry_after)
                return throttled
            return handle_rest(self, Request(method, path, parse_query(query), headers, body))
        if (token_path := _TOKEN_PATH.match(path)) and method == "POST":
            self.stats.count("other")
            return self.auth.token_response(token_path["tenant"], body)
        if (oidc := _OIDC_PATH.match(path)) and method == "GET":
            self.stats.count("other")
            return self.auth.openid_configuration(self.base_url, oidc["tenant"])
        self.stats.count("other")
        return json_response(404, {"error": {"code": "notFound", "message": f"No sandbox route for {method} {path}"}})

    def _delay(self) -> None:
        if self.faults.latency_s > 0:
            time.sleep(self.faults.latency_s)

    def _unauthorized(self) -> Response:
        self.stats.count_unauthorized()
        return json_response(
            401,
            {"error": {"code": "InvalidAuthenticationToken", "message": "Access token is empty or invalid."}},
            {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'},
        )


def _handler_class(server: SandboxServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as SDK clients expect
        # Headers and body go out in separate writes; with Nagle on, keep-alive clients wait
        # for the delayed ACK (~40 ms) on every response.
        disable_nagle_algorithm = True
        server_version = "spindex-sandbox"

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                response = server.dispatch(method, self.path, headers, body)
            except Exception as exc:  # a sandbox bug must answer 500, not drop the connection
                response = json_response(500, {"error": {"code": "generalException", "message": f"sandbox error: {exc!r}"}})
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            if "Content-Length" not in response.headers:
                length_out = response.length if response.stream is not None else len(response.body)
                self.send_header("Content-Length", str(length_out or 0))
            self.end_headers()
            if method == "HEAD":
                return
            try:
                if response.stream is not None:
                    for chunk in response.stream:
                        self.wfile.write(chunk)
                else:
                    self.wfile.write(response.body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def do_GET(self) -> None:  # noqa: N802 (BaseHTTPRequestHandler's naming)
            self._serve("GET")

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve("HEAD")

        def do_POST(self) -> None:  # noqa: N802
            self._serve("POST")

        def do_PUT(self) -> None:  # noqa: N802
            self._serve("PUT")

        def do_PATCH(self) -> None:  # noqa: N802
            self._serve("PATCH")

        def do_DELETE(self) -> None:  # noqa: N802
            self._serve("DELETE")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return  # quiet: tests and the demo read the stats, not an access log

    return _Handler
