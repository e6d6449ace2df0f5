"""`POST /v1.0/$batch`: JSON batching as Graph does it (concepts/json-batching.md).

Each sub-request is served by `GraphApp.handle` on its own, so it is counted, throttled and
permission-checked on its own; the batch itself answers 200 even when every part failed.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sandbox import graph_json as gj
from sandbox.http_types import Request, Response, json_response, parse_query

if TYPE_CHECKING:
    from sandbox.graph import GraphApp

GRAPH_BATCH_MAX = 20  # Graph JSON batching: at most 20 requests per batch (json-batching.md)


def _bad(message: str) -> Response:
    return json_response(400, gj.error("BadRequest", message))


def run_batch(app: GraphApp, request: Request) -> Response:
    """Serve a batch: sub-requests in order, `dependsOn` honoured with 424 on a failed one."""
    try:
        payload = json.loads(request.body or b"{}")
    except ValueError:
        return _bad("The batch body is not valid JSON.")
    parts = payload.get("requests") if isinstance(payload, dict) else None
    if not isinstance(parts, list) or not parts:
        return _bad("A batch needs a non-empty 'requests' array.")
    if len(parts) > GRAPH_BATCH_MAX:
        return _bad(f"The batch holds {len(parts)} requests; the limit is {GRAPH_BATCH_MAX}.")
    ids = [str(p.get("id", "")) if isinstance(p, dict) else "" for p in parts]
    if "" in ids or len(set(ids)) != len(ids):
        return _bad("Every batch request needs a unique, non-empty 'id'.")
    for part in parts:
        unknown = [d for d in part.get("dependsOn") or [] if str(d) not in ids]
        if unknown:
            return _bad(f"Request {part['id']} depends on unknown request(s) {unknown}.")

    statuses: dict[str, int] = {}
    responses: list[dict[str, Any]] = []
    for part in parts:
        part_id = str(part["id"])
        failed = [str(d) for d in part.get("dependsOn") or [] if statuses.get(str(d), 424) >= 400]
        if failed:
            answer = json_response(424, gj.error("FailedDependency", f"Dependency {failed[0]} failed."))
        else:
            answer = _serve(app, part, request)
        statuses[part_id] = answer.status
        responses.append(_sub_response(part_id, answer))
    return json_response(200, {"responses": responses})


def _serve(app: GraphApp, part: dict[str, Any], outer: Request) -> Response:
    method = str(part.get("method", "GET")).upper()
    url = str(part.get("url", ""))
    if not url or "://" in url:
        return json_response(400, gj.error("BadRequest", "A batch request url must be relative, e.g. /drives/{id}."))
    split = urlsplit(url if url.startswith("/") else "/" + url)
    if split.path.lower().startswith("/$batch"):
        return json_response(400, gj.error("BadRequest", "A batch cannot contain a batch."))
    headers = {k.lower(): str(v) for k, v in (part.get("headers") or {}).items()}
    body = json.dumps(part["body"]).encode() if "body" in part else b""
    return app.handle(Request(method, split.path, parse_query(split.query), headers, body))


def _sub_response(part_id: str, answer: Response) -> dict[str, Any]:
    headers = {k: v for k, v in answer.headers.items() if k.lower() != "content-length"}
    item: dict[str, Any] = {"id": part_id, "status": answer.status, "headers": headers}
    if answer.json is not None:
        item["body"] = answer.json
    elif answer.body:
        # Graph base64-encodes non-JSON sub-response bodies.
        item["body"] = base64.b64encode(answer.body).decode()
    return item
