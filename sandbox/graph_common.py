"""What the Graph routes share: app permissions, Graph errors, and OData query helpers."""

from __future__ import annotations

import re
from typing import Any

from sandbox import graph_json as gj
from sandbox.http_types import Request, Response, json_response

SITES_READ = "Sites.Read.All"
FILES_READ = "Files.Read.All"
USER_READ = "User.Read.All"
GROUP_MEMBER_READ = "GroupMember.Read.All"
SITES_FULL_CONTROL = "Sites.FullControl.All"
DIRECTORY_READ = "Directory.Read.All"
# What the sandbox app holds by default; withhold one to test a 403. The broader permissions
# below are honoured when granted explicitly, but are not in the default set, so that taking
# one read permission away really takes it away.
ALL_PERMISSIONS = frozenset({SITES_READ, FILES_READ, USER_READ, GROUP_MEMBER_READ})
IMPLIED = {SITES_READ: SITES_FULL_CONTROL, USER_READ: DIRECTORY_READ, GROUP_MEMBER_READ: DIRECTORY_READ}

SITE_PAGE_CASTS = {"microsoft.graph.sitepage", "graph.sitepage"}
GROUP_CASTS = {"microsoft.graph.group", "graph.group"}
USER_CASTS = {"microsoft.graph.user", "graph.user"}


class GraphError(Exception):
    """An error answer in Graph's `{"error": {"code", "message"}}` shape."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}

    def response(self) -> Response:
        """The error as a response."""
        return json_response(self.status, gj.error(self.code, self.message), self.headers)


def not_found(what: str) -> GraphError:
    """404 itemNotFound."""
    return GraphError(404, "itemNotFound", f"The resource could not be found: {what}")


def bad_request(message: str) -> GraphError:
    """400 invalidRequest."""
    return GraphError(400, "invalidRequest", message)



def select_fields(request: Request) -> list[str] | None:
    """The `$select`ed property names, or None."""
    raw = request.query.get("select")
    return [f.strip() for f in raw.split(",") if f.strip()] if raw else None


def expand_set(request: Request) -> set[str]:
    """The `$expand`ed relationship names, lower case."""
    raw = request.query.get("expand", "")
    return {part.split("(")[0].strip().lower() for part in raw.split(",") if part.strip()}


_CLAUSE = re.compile(
    r"^\s*(?:(?P<prop>[\w/]+)\s+eq\s+'(?P<value>(?:[^']|'')*)'"  # prop eq 'value'
    r"|startswith\(\s*(?P<sprop>[\w/]+)\s*,\s*'(?P<svalue>(?:[^']|'')*)'\s*\))\s*$",  # startswith(prop,'v')
    re.I,
)


def apply_filter(values: list[dict[str, Any]], expression: str | None) -> list[dict[str, Any]]:
    """`$filter` with clauses `prop eq 'v'` or `startswith(prop,'v')`, joined by `and`."""
    if not expression:
        return values
    clauses = []
    for text in re.split(r"\s+and\s+", expression, flags=re.I):
        match = _CLAUSE.match(text)
        if match is None:
            raise bad_request(f"Unsupported $filter clause: {text!r} (the sandbox supports eq and startswith)")
        prop = match["prop"] or match["sprop"]
        value = (match["value"] if match["prop"] else match["svalue"]).replace("''", "'")
        clauses.append((prop, value, match["prop"] is None))

    def lookup(obj: dict[str, Any], prop: str) -> Any:
        for part in prop.split("/"):
            obj = obj.get(part) if isinstance(obj, dict) else None  # type: ignore[assignment]
        return obj

    def keep(obj: dict[str, Any]) -> bool:
        for prop, value, prefix in clauses:
            actual = lookup(obj, prop)
            if actual is None:
                return False
            text, wanted = str(actual).lower(), value.lower()
            if not (text.startswith(wanted) if prefix else text == wanted):
                return False
        return True

    return [v for v in values if keep(v)]
