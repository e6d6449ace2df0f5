"""The index definition is the single source of truth, and it is one Azure would accept.

Invariants defended:
- `IndexDoc` has exactly the fields of `schemas/index.json`, in the same order.
- A loaded definition has the requested name and vector dimensions, exactly one key field, and
  is a fresh copy each time (mutating one never changes the next).
- The security fields are filterable and never retrievable; the vector field can be read back.
- Out-of-range dimensions and invalid index names are refused before anything is created.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from ingest.index.base import IndexContractError, InvalidDocument, InvalidIndexName
from ingest.index.schema import (
    INDEX_SCHEMA_PATH,
    MAX_VECTOR_DIMENSIONS,
    check_definition,
    check_merge,
    field_names,
    field_types,
    load_index_definition,
    mergeable_fields,
    security_fields,
    validate_document_key,
    validate_index_name,
)
from ingest.models import IndexDoc


def test_index_doc_fields_equal_schema_fields() -> None:
    assert tuple(f.name for f in dataclasses.fields(IndexDoc)) == field_names()


def test_definition_has_name_dimensions_and_one_key() -> None:
    definition = load_index_definition("spindex-v2", 384)
    assert definition["name"] == "spindex-v2"
    fields = {f["name"]: f for f in definition["fields"]}
    assert fields["content_vector"]["dimensions"] == 384
    assert [f["name"] for f in definition["fields"] if f.get("key")] == ["id"]
    assert fields["id"]["type"] == "Edm.String"


def test_definition_is_a_fresh_copy() -> None:
    first = load_index_definition("a1", 8)
    first["fields"].clear()
    assert load_index_definition("a1", 8)["fields"]


def test_security_fields_are_filterable_and_hidden() -> None:
    fields = {f["name"]: f for f in load_index_definition("a1", 8)["fields"]}
    assert security_fields() == ("group_ids", "user_ids")
    for name in security_fields():
        assert fields[name]["type"] == "Collection(Edm.String)"
        assert fields[name]["filterable"] is True
        assert fields[name]["retrievable"] is False


def test_vector_field_is_stored_and_retrievable_for_reuse() -> None:
    fields = load_index_definition("a1", 8)["fields"]
    vector = next(f for f in fields if f["name"] == "content_vector")
    assert vector["retrievable"] is True and vector["stored"] is True
    assert vector["vectorSearchProfile"] == "hnsw-profile"


def test_every_attribute_is_explicit() -> None:
    # Azure's REST defaults make string fields searchable, filterable, sortable and facetable.
    for field in json.loads(INDEX_SCHEMA_PATH.read_text())["fields"]:
        for attribute in ("searchable", "filterable", "sortable", "facetable", "retrievable"):
            assert isinstance(field.get(attribute), bool), (field["name"], attribute)


def test_vector_search_and_semantic_sections() -> None:
    definition = load_index_definition("a1", 8)
    algorithm = definition["vectorSearch"]["algorithms"][0]
    assert algorithm["kind"] == "hnsw"
    assert algorithm["hnswParameters"] == {"m": 4, "efConstruction": 400, "efSearch": 500,
                                           "metric": "cosine"}
    assert definition["vectorSearch"]["profiles"] == [{"name": "hnsw-profile", "algorithm": "hnsw"}]
    config = definition["semantic"]["configurations"][0]
    assert config["name"] == "default"
    assert config["prioritizedFields"]["titleField"] == {"fieldName": "title"}
    assert config["prioritizedFields"]["prioritizedContentFields"] == [{"fieldName": "content"}]


def test_field_types() -> None:
    types = field_types()
    assert types["last_modified"] == "Edm.DateTimeOffset"
    assert types["chunk_no"] == types["page_start"] == "Edm.Int32"
    assert types["content_vector"] == "Collection(Edm.Single)"


@pytest.mark.parametrize("dimensions", [0, -1, MAX_VECTOR_DIMENSIONS + 1, 1.5, True, "384"])
def test_bad_dimensions_are_refused(dimensions: object) -> None:
    with pytest.raises(IndexContractError):
        load_index_definition("a1", dimensions)  # type: ignore[arg-type]


@pytest.mark.parametrize("dimensions", [1, MAX_VECTOR_DIMENSIONS])
def test_dimension_bounds_are_accepted(dimensions: int) -> None:
    assert load_index_definition("a1", dimensions)["name"] == "a1"


@pytest.mark.parametrize("name", ["", "a", "-a", "a-", "a--b", "A1", "a_b", "a.b", "a b", "é1",
                                  "a" * 129, "docs\n", None])
def test_bad_index_names_are_refused(name: object) -> None:
    with pytest.raises(InvalidIndexName):
        validate_index_name(name)


@pytest.mark.parametrize("name", ["ab", "spindex-v1", "1a", "a" * 128, "a-b-c-2026"])
def test_good_index_names_are_accepted(name: str) -> None:
    assert validate_index_name(name) == name


@pytest.mark.parametrize("key", ["", "_a", "a b", "a/b", "a" * 1025, "ключ"])
def test_bad_document_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidDocument):
        validate_document_key(key)


def test_definition_without_a_key_is_refused() -> None:
    definition = load_index_definition("a1", 8)
    definition["fields"][0]["key"] = False
    with pytest.raises(IndexContractError, match="key"):
        check_definition(definition)


def test_definition_with_retrievable_security_field_is_refused() -> None:
    definition = load_index_definition("a1", 8)
    next(f for f in definition["fields"] if f["name"] == "group_ids")["retrievable"] = True
    with pytest.raises(IndexContractError, match="security"):
        check_definition(definition)


def test_merge_takes_item_wide_fields_only() -> None:
    assert {"title", "url", "path", "last_modified", "group_ids", "user_ids", "acl_hash"} <= \
        mergeable_fields()
    for name in ("id", "parent_key", "chunk_no", "content", "content_vector", "content_hash"):
        with pytest.raises(InvalidDocument):
            check_merge({name: "x"}, field_types(), dimensions=8)
    with pytest.raises(InvalidDocument):
        check_merge({"no_such_field": "x"}, field_types(), dimensions=8)
    with pytest.raises(InvalidDocument):
        check_merge({"group_ids": None}, field_types(), dimensions=8)
    with pytest.raises(InvalidDocument):
        check_merge({"last_modified": "yesterday"}, field_types(), dimensions=8)
    assert check_merge({"group_ids": frozenset({"b", "a"})}, field_types(), dimensions=8) == \
        {"group_ids": ["a", "b"]}
