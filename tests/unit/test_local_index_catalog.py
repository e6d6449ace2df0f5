"""The local catalog manages physical indexes and aliases the way Azure AI Search does.

Invariants defended:
- An index is created once (a second create fails, and never clobbers the first), opened only
  if it exists, listed by name, and names follow Azure's rules.
- An alias points at exactly one existing index; repointing replaces it atomically (the alias
  file is always whole) and never points at a missing index.
- An index that an alias points at cannot be deleted; after repointing it can, and any store
  still open on it refuses further calls instead of writing into a deleted file.
- Alias and index names do not collide.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.errors import IndexUnavailable
from ingest.index.base import (
    IndexAlreadyExists,
    IndexCatalog,
    IndexClosed,
    IndexContractError,
    IndexInUse,
    IndexNotFound,
    InvalidIndexName,
)
from ingest.index.local import LocalIndexCatalog

DIMS = 8


async def test_catalog_satisfies_the_protocol(tmp_path: Path) -> None:
    assert isinstance(LocalIndexCatalog(tmp_path), IndexCatalog)


async def test_create_open_list(tmp_path: Path) -> None:
    catalog = LocalIndexCatalog(tmp_path / "nested" / "root")
    assert await catalog.list_indexes() == []
    created = await catalog.create_index("docs-v2", DIMS)
    await catalog.create_index("docs-v1", 16)
    assert await catalog.list_indexes() == ["docs-v1", "docs-v2"]
    opened = await catalog.open_index("docs-v1")
    assert opened.name == "docs-v1" and opened.dimensions == 16
    assert created.definition["name"] == "docs-v2"
    assert not list((tmp_path / "nested" / "root").glob("*.tmp"))


async def test_create_refuses_an_existing_index_and_keeps_it(tmp_path: Path) -> None:
    catalog = LocalIndexCatalog(tmp_path)
    first = await catalog.create_index("docs-v1", DIMS)
    with pytest.raises(IndexAlreadyExists):
        await catalog.create_index("docs-v1", 16)
    assert (await catalog.open_index("docs-v1")).dimensions == DIMS
    assert await first.count() == 0


async def test_open_missing_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFound):
        await LocalIndexCatalog(tmp_path).open_index("nope-v1")


@pytest.mark.parametrize("name", ["Docs", "docs_v1", "-docs", "docs-", "d", "../etc", "a/b"])
async def test_invalid_names_are_refused(tmp_path: Path, name: str) -> None:
    catalog = LocalIndexCatalog(tmp_path)
    with pytest.raises(InvalidIndexName):
        await catalog.create_index(name, DIMS)
    await catalog.create_index("docs-v1", DIMS)
    with pytest.raises(InvalidIndexName):
        await catalog.set_alias(name, "docs-v1")


async def test_bad_dimensions_create_nothing(tmp_path: Path) -> None:
    catalog = LocalIndexCatalog(tmp_path)
    with pytest.raises(IndexContractError):
        await catalog.create_index("docs-v1", 5000)
    assert await catalog.list_indexes() == []


async def test_alias_set_get_repoint(tmp_path: Path) -> None:
    catalog = LocalIndexCatalog(tmp_path)
    await catalog.create_index("docs-v1", DIMS)
    await catalog.create_index("docs-v2", DIMS)
    assert await catalog.get_alias("docs") is None
    await catalog.set_alias("docs", "docs-v1")
    assert await catalog.get_alias("docs") == "docs-v1"
    await catalog.set_alias("docs", "docs-v2")
    assert await catalog.get_alias("docs") == "docs-v2"
    on_disk = json.loads((tmp_path / "aliases.json").read_text())
    assert on_disk == {"version": 1, "aliases": {"docs": "docs-v2"}}
    assert await LocalIndexCatalog(tmp_path).get_alias("docs") == "docs-v2"
    assert not list(tmp_path.glob("*.tmp"))


async def test_alias_to_a_missing_index_is_refused(tmp_path: Path) -> None:
    catalog = LocalIndexCatalog(tmp_path)
    with pytest.raises(IndexNotFound):
        await catalog.set_alias("docs", "docs-v9")
    assert await catalog.get_alias("docs") is None


async def test_alias_target_cannot_be_deleted_until_repointed(tmp_path: Path) -> None:
    catalog = LocalIndexCatalog(tmp_path)
    old = await catalog.create_index("docs-v1", DIMS)
    await catalog.create_index("docs-v2", DIMS)
    await catalog.set_alias("docs", "docs-v1")
    with pytest.raises(IndexInUse):
        await catalog.delete_index("docs-v1")
    assert await old.count() == 0
    await catalog.set_alias("docs", "docs-v2")
    await catalog.delete_index("docs-v1")
    assert await catalog.list_indexes() == ["docs-v2"]
    assert not list(tmp_path.glob("docs-v1.sqlite*"))
    with pytest.raises(IndexClosed):
        await old.count()
    with pytest.raises(IndexNotFound):
        await catalog.delete_index("docs-v1")


async def test_alias_and_index_names_do_not_collide(tmp_path: Path) -> None:
    catalog = LocalIndexCatalog(tmp_path)
    await catalog.create_index("docs-v1", DIMS)
    await catalog.set_alias("docs", "docs-v1")
    with pytest.raises(IndexAlreadyExists):
        await catalog.create_index("docs", DIMS)
    with pytest.raises(IndexInUse):
        await catalog.set_alias("docs-v1", "docs-v1")


async def test_a_corrupt_alias_file_is_index_unavailable(tmp_path: Path) -> None:
    (tmp_path / "aliases.json").write_text("{not json")
    with pytest.raises(IndexUnavailable):
        await LocalIndexCatalog(tmp_path).get_alias("docs")
