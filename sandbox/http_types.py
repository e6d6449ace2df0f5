"""The request and response values the sandbox's handlers pass around, free of any socket."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote


@dataclass(slots=True)
class Request:
    """One HTTP request. `query` keys are lower case without `$` (`$select` -> `select`)."""

    method: str
    path: str  # percent-encoded, without the query string
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""

    @property
    def segments(self) -> list[str]:
        """The path's segments, each URL-decoded (kiota percent-encodes commas in site ids)."""
        return [unquote(part) for part in self.path.split("/") if part]

    def header(self, name: str, default: str = "") -> str:
        """A request header by case-insensitive name."""
        return self.headers.get(name.lower(), default)


@dataclass(slots=True)
class Response:
    """One HTTP response: a body in memory, or a stream of `length` bytes."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    json: Any = None
    stream: Iterable[bytes] | None = None
    length: int | None = None


def parse_query(query_string: str) -> dict[str, str]:
    """Query parameters with OData names normalised: `%24top=5` and `top=5` both give `top`."""
    params: dict[str, str] = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        params[key.lstrip("$").lower()] = value
    return params


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON response; the parsed payload is kept too, for $batch to embed."""
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    all_headers = {"Content-Type": "application/json; odata.metadata=minimal; charset=utf-8"}
    all_headers.update(headers or {})
    return Response(status, all_headers, body, payload)
