"""The `$filter` subset spindex emits, parsed strictly for the fake search service.

Accepting only these forms is the point: a filter regression in the backend or in
`ingest/query.py` becomes a 400 from the fake instead of a query that silently matches.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any


class FilterError(ValueError):
    """A filter outside the accepted grammar, or naming a field it cannot use."""


Predicate = Callable[[Mapping[str, Any]], bool]
_FILTER_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+)|(?P<name>[A-Za-z_]"
                           r"[A-Za-z0-9_.]*)|(?P<punct>[(),:/]))")
_COMPARE = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b,
            "lt": lambda a, b: a is not None and a < b, "le": lambda a, b: a is not None and a <= b,
            "gt": lambda a, b: a is not None and a > b, "ge": lambda a, b: a is not None and a >= b}


def compile_filter(text: object, fields: Mapping[str, Mapping[str, Any]]) -> Predicate:
    """A predicate over documents for an OData `$filter` in the subset spindex emits.

    Grammar (`or` binds looser than `and`; parentheses group):

        expr    := conj ('or' conj)*          conj := atom ('and' atom)*
        atom    := '(' expr ')' | 'true' | 'false'
                 | FIELD OP 'text' | FIELD OP 123          OP: eq ne lt le gt ge
                 | 'search.in' '(' FIELD ',' 'v1,v2' ',' 'delims' ')'
                 | COLL '/any(' VAR ':' ( VAR 'eq' 'text' | 'search.in(' VAR ', ' ... ')' ) ')'

    FIELD must be a filterable scalar field, COLL a filterable Collection(Edm.String); literals
    must match the field's type. Anything else raises `FilterError`.
    """
    if text is None:
        return lambda doc: True
    if not isinstance(text, str):
        raise FilterError("filter must be a string")
    tokens, pos = [], 0
    while pos < len(text):
        match = _FILTER_TOKEN.match(text, pos)
        if not match or match.end() == pos:
            if text[pos:].strip() == "":
                break
            raise FilterError(f"unexpected character at {pos}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    parser = _FilterParser(tokens, fields)
    predicate = parser.expr()
    if parser.pos != len(tokens):
        raise FilterError(f"unexpected {tokens[parser.pos][1]!r}")
    return predicate


class _FilterParser:
    def __init__(self, tokens: list[tuple[str, str]],
                 fields: Mapping[str, Mapping[str, Any]]) -> None:
        self.tokens, self.fields, self.pos = tokens, fields, 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, kind: str, value: str | None = None) -> str:
        token = self.peek()
        if token is None or token[0] != kind or (value is not None and token[1] != value):
            raise FilterError(f"expected {value or kind}, got {token[1] if token else 'end'!r}")
        self.pos += 1
        return token[1]

    def string(self) -> str:
        return self.take("str")[1:-1].replace("''", "'")

    def expr(self) -> Predicate:
        parts = [self.conj()]
        while self.peek() == ("name", "or"):
            self.pos += 1
            parts.append(self.conj())
        return parts[0] if len(parts) == 1 else lambda d: any(p(d) for p in parts)

    def conj(self) -> Predicate:
        parts = [self.atom()]
        while self.peek() == ("name", "and"):
            self.pos += 1
            parts.append(self.atom())
        return parts[0] if len(parts) == 1 else lambda d: all(p(d) for p in parts)

    def field(self, name: str, *, collection: bool) -> Mapping[str, Any]:
        spec = self.fields.get(name)
        if spec is None or not spec.get("filterable"):
            raise FilterError(f"'{name}' is not a filterable field")
        if (spec["type"] == "Collection(Edm.String)") != collection:
            raise FilterError(f"'{name}' cannot be used this way in a filter")
        return spec

    def atom(self) -> Predicate:
        token = self.peek()
        if token == ("punct", "("):
            self.pos += 1
            inner = self.expr()
            self.take("punct", ")")
            return inner
        name = self.take("name")
        if name in ("true", "false"):
            return lambda d, v=name == "true": v
        if name == "search.in":
            self.take("punct", "(")
            field = self.take("name")
            self.field(field, collection=False)
            return self.search_in(lambda d: d.get(field))
        if self.peek() == ("punct", "/"):
            self.field(name, collection=True)
            return self.lambda_any(name)
        spec = self.field(name, collection=False)
        op = self.take("name")
        if op not in _COMPARE:
            raise FilterError(f"unknown operator {op!r}")
        token = self.peek()
        if spec["type"] == "Edm.String" and token and token[0] == "str":
            value: object = self.string()
        elif spec["type"] == "Edm.Int32" and token and token[0] == "num":
            value = int(self.take("num"))
        else:
            raise FilterError(f"a {spec['type']} field needs a literal of its type")
        compare = _COMPARE[op]
        return lambda d: bool(compare(d.get(name), value))

    def search_in(self, value_of: Callable[[Mapping[str, Any]], object]) -> Predicate:
        """The rest of `search.in(x, 'values', 'delimiters')` after `x`."""
        self.take("punct", ",")
        values = self.string()
        self.take("punct", ",")
        delimiters = self.string()
        self.take("punct", ")")
        if not delimiters:
            raise FilterError("search.in needs at least one delimiter")
        allowed = {v for v in re.split("[" + re.escape(delimiters) + "]", values) if v}
        return lambda d: value_of(d) in allowed

    def lambda_any(self, collection: str) -> Predicate:
        """The rest of `coll/any(v: ...)` after `coll`."""
        self.take("punct", "/")
        self.take("name", "any")
        self.take("punct", "(")
        var = self.take("name")
        self.take("punct", ":")
        matches: Callable[[str], bool]
        if self.peek() == ("name", "search.in"):
            self.pos += 1
            self.take("punct", "(")
            self.take("name", var)
            inner = self.search_in(lambda d: d["v"])
            matches = lambda v: inner({"v": v})  # noqa: E731
        else:
            self.take("name", var)
            self.take("name", "eq")
            wanted = self.string()
            matches = lambda v: v == wanted  # noqa: E731
        self.take("punct", ")")
        return lambda d: any(matches(v) for v in d.get(collection) or ())
