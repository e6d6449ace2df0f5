"""A fake of the Azure AI Search REST surface spindex uses, on 127.0.0.1, for the real SDK.

    POST /indexes                     PUT|GET|DELETE /indexes('{name}')    GET /indexes
    POST /indexes('{name}')/docs/search.index        (also /indexes/{name}/docs/index)
    POST /indexes('{name}')/docs/search.post.search  (also /indexes/{name}/docs/search)
    GET  /indexes('{name}')/docs/$count              GET /indexes('{name}')/search.stats
    POST /aliases   GET /aliases   GET|PUT|DELETE /aliases('{name}')

It checks the credential (`api-key`, or `Authorization: Bearer <token>`) and `api-version`,
keeps the definitions it received (`definitions`) for assertions, applies the four indexing
actions with per-document results (200, or 207 when any document fails), refuses more than
1,000 actions (400) or 16 MB (413), and answers searches with simple term matching, exact
cosine vectors (numpy) and RRF fusion (`search_ranking.py`). Filters are parsed strictly:
only the forms spindex emits are accepted, anything else is a 400, so a filter regression
fails a test instead of silently matching (grammar: `search_odata.py`). Fields marked
`retrievable: false` are never returned. Documents operations work through an alias;
deleting an alias target is a 400.

Knobs (attributes, may be changed while running):
  inject_207     key -> status (every attempt), key -> (status, attempts), or a callable
                 key -> status | None: that document fails with the status and is not applied
  throttle_next  answer the next N requests of `throttle_routes` with `throttle_status`
                 and `Retry-After: retry_after`
  max_skip       largest `skip` accepted (the service's 100,000)
Records: `requests` (every request: method, path, headers, body size, action count, status).
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from tests.fakes.search_odata import FilterError, compile_filter
from tests.fakes.search_ranking import QueryError, fused, ordered, text_ranking, tokens, vector_ranking

API_VERSION = "2026-04-01"
MAX_ACTIONS = 1000  # actions per indexing batch (search-limits-quotas-capacity)
MAX_BYTES = 16 * 2**20  # payload of one indexing request (same page)
MAX_SKIP = 100_000  # largest $skip (Search Documents REST reference)
MAX_PAGE = 1000  # results per page (same reference)
DEFAULT_TOP = 50  # results when `top` is not given
_KEY = re.compile(r"[A-Za-z0-9=\-][A-Za-z0-9_=\-]{0,1023}")
_ACTIONS = ("upload", "merge", "mergeOrUpload", "delete")
# /indexes, /indexes('x'), /indexes/x, then an optional rest (/docs/search.index, /search.stats...)
_INDEX_PATH = re.compile(r"^/indexes(?:\('([^']*)'\)|/([^/()]+))?(/.*)?$")
_ALIAS_PATH = re.compile(r"^/aliases(?:\('([^']*)'\)|/([^/()]+))?$")
_DOC_ROUTES = {
    "/docs/search.index": "index", "/docs/index": "index",
    "/docs/search.post.search": "search", "/docs/search": "search",
    "/docs/$count": "count",
    "/search.stats": "stats", "/stats": "stats",
}


class HttpError(Exception):
    """An error answer: status, OData error code, message."""

    def __init__(self, status: int, message: str, code: str = "InvalidRequestParameter",
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.headers = status, code, dict(headers or {})


@dataclass
class RecordedRequest:
    """One request as received: `route` is index, search, count, stats, indexes or aliases."""

    method: str
    path: str
    route: str
    headers: dict[str, str]
    body_size: int
    status: int = 0
    action_count: int | None = None
    keys: tuple[str, ...] = ()
    body: dict[str, Any] | None = None  # the JSON of non-indexing requests


@dataclass
class FakeIndex:
    """One physical index: its definition as received, and its documents by key."""

    definition: dict[str, Any]
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    etag: int = 1

    @property
    def fields(self) -> dict[str, dict[str, Any]]:
        return {f["name"]: f for f in self.definition["fields"]}

    @property
    def key_field(self) -> str:
        return next(f["name"] for f in self.definition["fields"] if f.get("key"))


class FakeSearchService:
    """Context manager: `with FakeSearchService() as fake: fake.endpoint`."""

    def __init__(self, *, api_keys: Collection[str] = ("test-key",),
                 tokens: Collection[str] = ("test-token",), api_version: str = API_VERSION,
                 max_actions: int = MAX_ACTIONS, max_bytes: int = MAX_BYTES,
                 max_skip: int = MAX_SKIP) -> None:
        self.api_keys, self.tokens, self.api_version = set(api_keys), set(tokens), api_version
        self.max_actions, self.max_bytes, self.max_skip = max_actions, max_bytes, max_skip
        self.indexes: dict[str, FakeIndex] = {}
        self.aliases: dict[str, str] = {}
        self.definitions: dict[str, dict[str, Any]] = {}  # last definition received per name
        self.requests: list[RecordedRequest] = []
        self.inject_207: Mapping[str, int | tuple[int, int]] | Callable[[str], int | None] = {}
        self.throttle_next = 0
        self.throttle_status = 429
        self.throttle_routes: Collection[str] = ("index",)
        self.retry_after = "0"
        self._injected: dict[str, int] = {}  # attempts used per injected key
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """`http://127.0.0.1:<port>`, the service endpoint to hand to the SDK."""
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeSearchService:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out apart: no 40 ms stalls

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                fake._handle(self)

            do_POST = do_PUT = do_DELETE = do_GET  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True)  # short poll: a quick shutdown
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def index_requests(self) -> list[RecordedRequest]:
        """The indexing requests received, refused ones included."""
        return [r for r in self.requests if r.route == "index"]

    # --- dispatch ------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        path = unquote(url.path)
        record = RecordedRequest(handler.command, path, "?", {k.lower(): v for k, v in
                                 handler.headers.items()}, len(raw))
        with self._lock:
            self.requests.append(record)
        status, payload, headers = 500, None, {}
        try:
            self._authorise(handler, parse_qs(url.query))
            status, payload, headers = self._route(handler.command, path, parse_qs(url.query),
                                                   raw, record)
        except HttpError as exc:
            status, headers = exc.status, exc.headers
            payload = {"error": {"code": exc.code, "message": str(exc)}}
        record.status = status
        body = b"" if payload is None else (
            payload.encode() if isinstance(payload, str) else json.dumps(payload).encode())
        handler.send_response(status)
        handler.send_header("Content-Type", "text/plain" if isinstance(payload, str)
                            else "application/json; odata.metadata=minimal")
        handler.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    def _authorise(self, handler: BaseHTTPRequestHandler, query: Mapping[str, list[str]]) -> None:
        bearer = handler.headers.get("Authorization", "")
        key = handler.headers.get("api-key")
        if key is not None and key not in self.api_keys:
            raise HttpError(403, "Invalid api-key", "Forbidden")
        if key is None and not (bearer.startswith("Bearer ") and bearer[7:] in self.tokens):
            raise HttpError(401, "Credentials are missing or invalid", "Unauthorized")
        if query.get("api-version") != [self.api_version]:
            raise HttpError(400, f"api-version must be {self.api_version}", "InvalidApiVersion")

    def _route(self, method: str, path: str, query: Mapping[str, list[str]], raw: bytes,
               record: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        alias = _ALIAS_PATH.match(path)
        if alias:
            record.route = "aliases"
            return self._aliases(method, alias.group(1) or alias.group(2), raw, record)
        match = _INDEX_PATH.match(path)
        if not match:
            raise HttpError(404, f"no route {path}", "NotFound")
        name, rest = match.group(1) or match.group(2), match.group(3) or ""
        if not rest:
            record.route = "indexes"
            return self._indexes(method, name, raw, record)
        route = _DOC_ROUTES.get(rest)
        if route is None or name is None:
            raise HttpError(404, f"no route {path}", "NotFound")
        record.route = route
        with self._lock:
            if route in self.throttle_routes and self.throttle_next > 0:
                self.throttle_next -= 1
                raise HttpError(self.throttle_status, "Too many requests, retry later",
                                "Throttled", {"Retry-After": self.retry_after})
        index = self._resolve(name)
        if route == "index":
            if method != "POST":
                raise HttpError(405, "use POST", "MethodNotAllowed")
            if len(raw) > self.max_bytes:
                raise HttpError(413, "The request is too large", "RequestEntityTooLarge")
            return self._index_docs(index, _json(raw), record)
        if route == "search":
            body = _json(raw)
            record.body = body
            return 200, self._search(index, body), {}
        if route == "count":
            return 200, str(len(index.docs)), {}
        return 200, {"documentCount": len(index.docs), "storageSize": len(raw),
                     "vectorIndexSize": 0}, {}

    def _resolve(self, name: str) -> FakeIndex:
        with self._lock:
            target = self.aliases.get(name, name)
            if target not in self.indexes:
                raise HttpError(404, f"No index with the name '{name}' was found", "NotFound")
            return self.indexes[target]

    # --- indexes and aliases -------------------------------------------------------------

    def _indexes(self, method: str, name: str | None, raw: bytes,
                 record: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        prefer = record.headers.get("prefer") == "return=representation"
        with self._lock:
            if name is None:
                if method == "GET":
                    listed = [self._definition_of(n) for n in sorted(self.indexes)]
                    return 200, {"value": listed}, {}
                if method != "POST":
                    raise HttpError(405, "use GET or POST", "MethodNotAllowed")
                definition = _json(raw)
                record.body = definition
                name = str(definition.get("name"))
                if name in self.indexes or name in self.aliases:
                    raise HttpError(409, f"Cannot create index '{name}': the name is in use",
                                    "ResourceNameAlreadyInUse")
                return 201, self._store_definition(name, definition), {}
            if method == "GET":
                return 200, self._definition_of(self._resolve_name(name)), {}
            if method == "DELETE":
                if name not in self.indexes:
                    raise HttpError(404, f"No index with the name '{name}' was found", "NotFound")
                users = sorted(a for a, target in self.aliases.items() if target == name)
                if users:
                    raise HttpError(400, f"Index '{name}' cannot be deleted: alias(es) "
                                    f"{', '.join(users)} map to it", "CannotDeleteIndex")
                del self.indexes[name]
                return 204, None, {}
            if method != "PUT":
                raise HttpError(405, "use GET, PUT or DELETE", "MethodNotAllowed")
            definition = _json(raw)
            record.body = definition
            target = self.aliases.get(name, name)
            exists = target in self.indexes
            if record.headers.get("if-none-match") == "*" and exists:
                raise HttpError(412, f"Index '{name}' already exists", "PreconditionFailed")
            if record.headers.get("if-match") and not exists:
                raise HttpError(412, f"Index '{name}' does not exist", "PreconditionFailed")
            if definition.get("name") != (target if exists else name):
                raise HttpError(400, "The index name in the body must match the URL")
            stored = self._store_definition(target, definition)
            return (200 if exists else 201), (stored if prefer else None), {}

    def _resolve_name(self, name: str) -> str:
        target = self.aliases.get(name, name)
        if target not in self.indexes:
            raise HttpError(404, f"No index with the name '{name}' was found", "NotFound")
        return target

    def _store_definition(self, name: str, definition: dict[str, Any]) -> dict[str, Any]:
        _check_definition(definition)
        self.definitions[name] = json.loads(json.dumps(definition))
        clean = {k: v for k, v in definition.items() if not k.startswith("@odata")}
        if name in self.indexes:
            self.indexes[name].definition = clean
            self.indexes[name].etag += 1
        else:
            self.indexes[name] = FakeIndex(clean)
        return self._definition_of(name)

    def _definition_of(self, name: str) -> dict[str, Any]:
        index = self.indexes[name]
        return {"@odata.etag": f'"0x{index.etag:04X}"', **json.loads(json.dumps(index.definition))}

    def _aliases(self, method: str, name: str | None, raw: bytes,
                 record: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            if name is None and method == "GET":
                return 200, {"value": [self._alias_of(a) for a in sorted(self.aliases)]}, {}
            if method in ("PUT", "POST"):
                body = _json(raw)
                record.body = body
                if name is None:
                    name = str(body.get("name"))
                    if name in self.aliases:
                        raise HttpError(409, f"Alias '{name}' already exists",
                                        "ResourceNameAlreadyInUse")
                indexes = body.get("indexes")
                if body.get("name") != name or not isinstance(indexes, list) or len(indexes) != 1:
                    raise HttpError(400, "an alias names itself and exactly one index")
                if indexes[0] not in self.indexes:
                    raise HttpError(400, f"Index '{indexes[0]}' does not exist")
                existed = name in self.aliases
                if record.headers.get("if-none-match") == "*" and existed:
                    raise HttpError(412, f"Alias '{name}' already exists", "PreconditionFailed")
                self.aliases[name] = indexes[0]
                return (200 if existed else 201), self._alias_of(name), {}
            if name is None or name not in self.aliases:
                raise HttpError(404, f"No alias with the name '{name}' was found", "NotFound")
            if method == "GET":
                return 200, self._alias_of(name), {}
            if method == "DELETE":
                del self.aliases[name]
                return 204, None, {}
            raise HttpError(405, "use GET, PUT or DELETE", "MethodNotAllowed")

    def _alias_of(self, name: str) -> dict[str, Any]:
        return {"@odata.etag": '"0x0001"', "name": name, "indexes": [self.aliases[name]]}

    # --- indexing ------------------------------------------------------------------------

    def _index_docs(self, index: FakeIndex, body: dict[str, Any],
                    record: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        actions = body.get("value")
        if not isinstance(actions, list) or not actions:
            raise HttpError(400, "The request has no actions ('value')")
        record.action_count = len(actions)
        key_field, fields = index.key_field, index.fields
        record.keys = tuple(str(a.get(key_field)) for a in actions if isinstance(a, dict))
        if len(actions) > self.max_actions:
            raise HttpError(400, f"The batch has {len(actions)} actions; at most "
                            f"{self.max_actions} are allowed")
        for action in actions:  # a schema violation refuses the whole batch, as the service does
            if not isinstance(action, dict) or action.get("@search.action") not in _ACTIONS:
                raise HttpError(400, "every action needs a valid '@search.action'")
            for name, value in action.items():
                if name != "@search.action":
                    _check_value(fields, name, value)
        results = []
        with self._lock:
            for action in actions:
                results.append(self._apply(index, key_field, action))
        failed = any(not r["status"] for r in results)
        return (207 if failed else 200), {"value": results}, {}

    def _apply(self, index: FakeIndex, key_field: str, action: dict[str, Any]) -> dict[str, Any]:
        key, kind = action.get(key_field), action["@search.action"]
        doc = {k: v for k, v in action.items() if k != "@search.action"}

        def result(code: int, message: str | None = None) -> dict[str, Any]:
            return {"key": key, "status": code < 300, "errorMessage": message, "statusCode": code}

        if not isinstance(key, str) or not _KEY.fullmatch(key):
            return result(400, f"Invalid document key: '{key}'")
        injected = self._injected_status(key)
        if injected is not None:
            return result(injected, f"injected failure {injected}")
        existing = index.docs.get(key)
        if kind == "delete":
            index.docs.pop(key, None)
            return result(200)
        if kind == "merge" and existing is None:
            return result(404, f"Document not found: '{key}'")
        for name, spec in index.fields.items():  # Edm.Single is float32, as the service stores it
            if spec["type"] == "Collection(Edm.Single)" and doc.get(name) is not None:
                doc[name] = np.asarray(doc[name], dtype=np.float32).tolist()
        if kind == "upload" or existing is None:
            index.docs[key] = {name: doc.get(name) for name in index.fields}
            return result(200 if existing is not None else 201)
        existing.update(doc)
        return result(200)

    def _injected_status(self, key: str) -> int | None:
        if callable(self.inject_207):
            return self.inject_207(key)
        entry = self.inject_207.get(key)
        if entry is None:
            return None
        if isinstance(entry, int):
            return entry
        status, attempts = entry
        used = self._injected.get(key, 0)
        if used >= attempts:
            return None
        self._injected[key] = used + 1
        return status

    # --- search --------------------------------------------------------------------------

    def _search(self, index: FakeIndex, body: dict[str, Any]) -> dict[str, Any]:
        fields = index.fields
        known = {"search", "filter", "select", "top", "skip", "orderby", "count",
                 "vectorQueries", "searchMode", "queryType", "vectorFilterMode"}
        if set(body) - known:
            raise HttpError(400, f"unsupported search parameters {sorted(set(body) - known)}")
        top, skip = body.get("top"), body.get("skip", 0) or 0
        if top is not None and (not isinstance(top, int) or top < 0):
            raise HttpError(400, "top must be a non-negative integer")
        if not isinstance(skip, int) or not 0 <= skip <= self.max_skip:
            raise HttpError(400, f"skip must be an integer in 0..{self.max_skip}")
        try:
            predicate = compile_filter(body.get("filter"), fields)
        except FilterError as exc:
            raise HttpError(400, f"Invalid expression: {exc}") from exc
        with self._lock:
            docs = [d for _, d in sorted(index.docs.items()) if predicate(d)]
        key = index.key_field
        text = body.get("search")
        terms = [] if text in (None, "*") else tokens(str(text))
        try:
            rankings = [text_ranking(docs, terms, fields, key)] if terms else []
            rankings += [vector_ranking(docs, query, fields, key) for query in body.get("vectorQueries") or []]
            if rankings:
                ranked = fused(rankings)
            else:
                ranked = [(d[key], 1.0) for d in ordered(docs, body.get("orderby"), fields)]
        except QueryError as exc:
            raise HttpError(400, str(exc)) from exc
        select = self._selected(body.get("select"), fields)
        by_key = {d[key]: d for d in docs}
        wanted = DEFAULT_TOP if top is None else top
        page = ranked[skip:skip + min(wanted, MAX_PAGE)]
        result: dict[str, Any] = {"value": [
            {"@search.score": score, **{f: by_key[k].get(f) for f in select}} for k, score in page]}
        if body.get("count"):
            result["@odata.count"] = len(ranked)
        if wanted > MAX_PAGE and skip + MAX_PAGE < len(ranked):
            result["@search.nextPageParameters"] = {**body, "skip": skip + MAX_PAGE,
                                                    "top": wanted - MAX_PAGE}
        return result

    @staticmethod
    def _selected(select: object, fields: Mapping[str, dict[str, Any]]) -> list[str]:
        retrievable = [n for n, f in fields.items() if f.get("retrievable", True)]
        if select in (None, "", "*"):
            return retrievable
        names = [s.strip() for s in str(select).split(",")]
        for name in names:
            if name not in fields:
                raise HttpError(400, f"Could not find a property named '{name}'")
            if name not in retrievable:
                raise HttpError(400, f"The field '{name}' is not retrievable")
        return names


def _json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"null")
    except ValueError as exc:
        raise HttpError(400, "The request body is not JSON") from exc
    if not isinstance(body, dict):
        raise HttpError(400, "The request body must be a JSON object")
    return body


def _check_definition(definition: Mapping[str, Any]) -> None:
    """400 unless the definition has fields, one key, and vector fields bound to profiles."""
    fields = definition.get("fields")
    if not isinstance(fields, list) or not fields:
        raise HttpError(400, "The index has no fields")
    if sum(1 for f in fields if f.get("key")) != 1:
        raise HttpError(400, "The index needs exactly one key field")
    profiles = {p["name"] for p in (definition.get("vectorSearch") or {}).get("profiles", [])}
    for f in fields:
        if f.get("type") == "Collection(Edm.Single)" and (
                not isinstance(f.get("dimensions"), int) or f.get("vectorSearchProfile")
                not in profiles):
            raise HttpError(400, f"Vector field '{f.get('name')}' needs dimensions and a profile")


def _check_value(fields: Mapping[str, dict[str, Any]], name: str, value: object) -> None:
    """400 unless `value` fits the field `name` (None clears a field and always fits)."""
    spec = fields.get(name)
    if spec is None:
        raise HttpError(400, f"The property '{name}' does not exist on the index")
    kind = spec["type"]
    if value is None:
        return
    ok: bool
    if kind == "Collection(Edm.String)":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif kind == "Collection(Edm.Single)":
        ok = isinstance(value, list) and len(value) == spec.get("dimensions") and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in value)
    elif kind == "Edm.Int32":
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise HttpError(400, f"The value of '{name}' does not fit its type {kind}")
