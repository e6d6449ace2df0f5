"""The index definition (`schemas/index.json`) and the rules every document must follow.

`schemas/index.json` is the single source of truth: the Azure backend sends it (with a name and
the embedder's dimensions filled in) as the index definition, the local backend derives its
tables from it, and `IndexDoc` must have exactly its fields (a unit test checks).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ingest.index.base import IndexContractError, InvalidDocument, InvalidIndexName
from ingest.models import IndexDoc, parent_key

INDEX_SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "index.json"

MAX_VECTOR_DIMENSIONS = 4096  # max dimensions per vector field (search-limits-quotas-capacity)
INDEX_NAME_MAX = 128  # index and alias name length (rest/api/searchservice/naming-rules)
DOCUMENT_KEY_MAX = 1024  # document key length (naming-rules)

SECURITY_FIELDS: tuple[str, ...] = ("group_ids", "user_ids")

# Fields that describe one chunk or identify the item: a merge writes item-wide values only.
NOT_MERGEABLE: frozenset[str] = frozenset({
    "id", "parent_key", "drive_id", "item_id", "chunk_no", "content", "content_vector",
    "content_hash", "page_start", "page_end",
})

# Stricter than Azure (which also allows `_` in index names): lowercase letters, digits and
# single dashes, starting and ending with a letter or digit, 2..128 characters.
_INDEX_NAME = re.compile(r"[a-z0-9](?:-?[a-z0-9])+")
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,127}")
_DOCUMENT_KEY = re.compile(r"[A-Za-z0-9=\-][A-Za-z0-9_=\-]{0,1023}")  # first char never `_`

_INT32 = (-(2**31), 2**31 - 1)
_SCALAR_TYPES = {"Edm.String", "Edm.Int32", "Edm.DateTimeOffset"}
_KNOWN_TYPES = _SCALAR_TYPES | {"Collection(Edm.String)", "Collection(Edm.Single)"}


def validate_index_name(name: object, *, kind: str = "index") -> str:
    """`name` if it is a valid index (or alias) name, else `InvalidIndexName`."""
    if isinstance(name, str) and len(name) <= INDEX_NAME_MAX and _INDEX_NAME.fullmatch(name):
        return name
    shown = repr(name[:40]) if isinstance(name, str) else f"<{type(name).__name__}>"
    raise InvalidIndexName(
        f"invalid {kind} name {shown}: use 2-{INDEX_NAME_MAX} lowercase letters, digits and "
        "single dashes, starting and ending with a letter or digit")


def validate_document_key(key: object) -> str:
    """`key` if Azure AI Search accepts it as a document key, else `InvalidDocument`."""
    if isinstance(key, str) and _DOCUMENT_KEY.fullmatch(key):
        return key
    shown = repr(key[:40]) if isinstance(key, str) else f"<{type(key).__name__}>"
    raise InvalidDocument(f"invalid document key {shown}: letters, digits, '-', '_', '=' only, "
                          f"at most {DOCUMENT_KEY_MAX}, not starting with '_'")


@lru_cache(maxsize=1)
def _raw_definition() -> dict[str, Any]:
    with INDEX_SCHEMA_PATH.open(encoding="utf-8") as f:
        definition: dict[str, Any] = json.load(f)
    return definition


def load_index_definition(name: str, dimensions: int) -> dict[str, Any]:
    """The index definition for index `name` with vectors of `dimensions`, ready to send.

    Returns a fresh deep copy (callers may mutate it) that passed `check_definition`.
    Raises `InvalidIndexName` or `IndexContractError`.
    """
    validate_index_name(name)
    if isinstance(dimensions, bool) or not isinstance(dimensions, int) or not (
            1 <= dimensions <= MAX_VECTOR_DIMENSIONS):
        raise IndexContractError(
            f"vector dimensions must be an integer in 1..{MAX_VECTOR_DIMENSIONS}, "
            f"got {dimensions!r}")
    definition = copy.deepcopy(_raw_definition())
    definition["name"] = name
    for field in definition["fields"]:
        if field["type"] == "Collection(Edm.Single)":
            field["dimensions"] = dimensions
    check_definition(definition)
    return definition


def check_definition(definition: Mapping[str, Any]) -> None:
    """Raise `IndexContractError` unless `definition` is one spindex can work with.

    Checks: unique valid field names of known types, exactly one key (an `Edm.String`), every
    vector field bound to a declared profile and algorithm with dimensions in range, semantic
    fields that exist, and security fields that are filterable and never retrievable.
    """
    fields = definition.get("fields")
    if not isinstance(fields, list) or not fields:
        raise IndexContractError("index definition has no fields")
    names = [f.get("name") for f in fields]
    if len(set(names)) != len(names):
        raise IndexContractError("index definition has duplicate field names")
    by_name = {f["name"]: f for f in fields}
    for f in fields:
        if not isinstance(f["name"], str) or not _FIELD_NAME.fullmatch(f["name"]) or \
                f["name"].startswith("azureSearch"):
            raise IndexContractError(f"invalid field name {f['name']!r}")
        if f.get("type") not in _KNOWN_TYPES:
            raise IndexContractError(f"field {f['name']!r} has unsupported type {f.get('type')!r}")
    keys = [f for f in fields if f.get("key")]
    if len(keys) != 1 or keys[0]["type"] != "Edm.String":
        raise IndexContractError("index definition needs exactly one Edm.String key field")
    vector_search = definition.get("vectorSearch") or {}
    algorithms = {a["name"] for a in vector_search.get("algorithms", [])}
    profiles = {p["name"]: p.get("algorithm") for p in vector_search.get("profiles", [])}
    for f in fields:
        if f["type"] != "Collection(Edm.Single)":
            continue
        dims = f.get("dimensions")
        if isinstance(dims, bool) or not isinstance(dims, int) or not (
                1 <= dims <= MAX_VECTOR_DIMENSIONS):
            raise IndexContractError(f"vector field {f['name']!r} has dimensions {dims!r}")
        profile = f.get("vectorSearchProfile")
        if profile not in profiles or profiles[profile] not in algorithms:
            raise IndexContractError(f"vector field {f['name']!r} has no valid profile")
        if f.get("filterable") or f.get("sortable") or f.get("facetable"):
            raise IndexContractError(f"vector field {f['name']!r} cannot filter, sort or facet")
    for config in (definition.get("semantic") or {}).get("configurations", []):
        prioritized = config.get("prioritizedFields", {})
        referenced = [prioritized.get("titleField", {}).get("fieldName")]
        for group in ("prioritizedContentFields", "prioritizedKeywordsFields"):
            referenced += [x.get("fieldName") for x in prioritized.get(group, [])]
        for ref in filter(None, referenced):
            if ref not in by_name:
                raise IndexContractError(f"semantic configuration names unknown field {ref!r}")
    for name in SECURITY_FIELDS:
        f = by_name.get(name)
        # Fail closed: who may read a document must be filterable and never shown to readers.
        if f is None or f["type"] != "Collection(Edm.String)" or not f.get("filterable") or \
                f.get("retrievable", True):
            raise IndexContractError(
                f"security field {name!r} must be a filterable, non-retrievable "
                "Collection(Edm.String)")


def field_names() -> tuple[str, ...]:
    """The names of the index fields, in definition order."""
    return tuple(f["name"] for f in _raw_definition()["fields"])


def field_types() -> dict[str, str]:
    """Field name -> EDM type, in definition order."""
    return {f["name"]: f["type"] for f in _raw_definition()["fields"]}


def security_fields() -> tuple[str, ...]:
    """The fields that hold who may read a document (filterable, never retrievable)."""
    return SECURITY_FIELDS


def mergeable_fields() -> frozenset[str]:
    """The fields `IndexStore.merge` may set: the item-wide ones."""
    return frozenset(field_names()) - NOT_MERGEABLE


def vector_dimensions(definition: Mapping[str, Any]) -> int:
    """The dimensions of the (single) vector field of `definition`."""
    dims = [f["dimensions"] for f in definition["fields"] if f["type"] == "Collection(Edm.Single)"]
    if len(dims) != 1:
        raise IndexContractError("index definition must have exactly one vector field")
    return int(dims[0])


def check_value(field: str, edm_type: str, value: object, *, dimensions: int) -> object:
    """`value` in the form stored for a field of `edm_type`, or `InvalidDocument`.

    Collections come back as lists (sets sorted, so storage is deterministic); a vector must
    have exactly `dimensions` finite numbers; a date must be ISO 8601 with an offset.
    """
    if edm_type == "Collection(Edm.String)":
        if isinstance(value, (set, frozenset)):
            value = sorted(value)
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            # None is refused too: an unknown ACL must never be written as if it were empty.
            raise InvalidDocument(f"field {field!r} must be a list of strings")
        return list(value)
    if edm_type == "Collection(Edm.Single)":
        if not isinstance(value, (list, tuple)) or len(value) != dimensions:
            raise InvalidDocument(f"field {field!r} must hold exactly {dimensions} numbers")
        # One numpy pass instead of a Python loop: this runs for every chunk of a full sync.
        array = np.array(value)
        if array.ndim != 1 or array.dtype.kind not in "fi" or not np.isfinite(array).all():
            raise InvalidDocument(f"field {field!r} must hold finite numbers only")
        return value
    if value is None:
        return None
    if edm_type == "Edm.Int32":
        if isinstance(value, bool) or not isinstance(value, int) or not (
                _INT32[0] <= value <= _INT32[1]):
            raise InvalidDocument(f"field {field!r} must be a 32-bit integer")
        return value
    if not isinstance(value, str):
        raise InvalidDocument(f"field {field!r} must be a string")
    if edm_type == "Edm.DateTimeOffset":
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            raise InvalidDocument(f"field {field!r} must be ISO 8601 with an offset, "
                                  f"like 2026-03-04T10:00:00Z")
    return value


def check_document(doc: IndexDoc, types: Mapping[str, str], *,
                   dimensions: int) -> dict[str, object]:
    """The fields of `doc` checked against an index definition's field types, or `InvalidDocument`.

    Beyond types: a valid key, and a parent key that is the one derived from the drive and item
    ids (every by-item operation finds chunks by it).
    """
    # Not doc.as_fields(): dataclasses.asdict deep-copies the vector, which dominates a bulk upsert.
    values = {f.name: getattr(doc, f.name) for f in dataclasses.fields(doc)}
    if set(values) != set(types):
        raise InvalidDocument("document fields differ from the index definition: "
                              f"{sorted(set(values) ^ set(types))}")
    validate_document_key(values["id"])
    for name in ("parent_key", "drive_id", "item_id"):
        if not isinstance(values[name], str) or not values[name]:
            raise InvalidDocument(f"document {values['id']}: {name} must be a non-empty string")
    if values["parent_key"] != parent_key(str(values["drive_id"]), str(values["item_id"])):
        raise InvalidDocument(
            f"document {values['id']}: parent_key does not match its drive and item")
    return {name: check_value(name, types[name], values[name], dimensions=dimensions)
            for name in types}


def check_merge(fields: Mapping[str, object], types: Mapping[str, str], *,
                dimensions: int) -> dict[str, object]:
    """The merge `fields` checked and normalised, or `InvalidDocument` naming the bad field."""
    allowed = set(types) - NOT_MERGEABLE
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise InvalidDocument(f"cannot merge fields {unknown}: item-wide fields only "
                              f"({', '.join(sorted(allowed))})")
    return {name: check_value(name, types[name], value, dimensions=dimensions)
            for name, value in fields.items()}


def fields_of(definition: Mapping[str, Any]) -> dict[str, str]:
    """Field name -> EDM type of a definition (for an index created from an older schema)."""
    return {f["name"]: f["type"] for f in definition["fields"]}


__all__ = [
    "INDEX_SCHEMA_PATH", "MAX_VECTOR_DIMENSIONS", "SECURITY_FIELDS", "NOT_MERGEABLE",
    "check_definition", "check_document", "check_merge", "check_value", "field_names",
    "field_types", "fields_of", "load_index_definition", "mergeable_fields", "security_fields",
    "validate_document_key", "validate_index_name", "vector_dimensions",
]
