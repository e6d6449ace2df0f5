"""Physical indexes behind an alias: `<alias>-v<N>`, newest number last.

The alias target is what readers query. The rollback target is the newest version older than
the target: `rollback` points the alias back at it, and `prune` never deletes either. No
registry is needed: the version numbers in the names are the history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ingest.index.base import IndexCatalog

# An alias update takes up to 10 s to reach every replica (search-how-to-alias.md).
ALIAS_PROPAGATION_S = 10.0


class AliasError(ValueError):
    """An alias operation that would leave readers without an index."""


@dataclass(frozen=True, slots=True)
class AliasStatus:
    """Where an alias points, what rollback would restore, and every version that exists."""

    alias: str
    target: str | None
    rollback: str | None
    versions: list[str]


def version_of(alias: str, index: str) -> int | None:
    """N for `<alias>-vN`, None for an index that is not a version of this alias."""
    match = re.fullmatch(re.escape(alias) + r"-v(\d+)", index)
    return int(match.group(1)) if match else None


async def status(catalog: IndexCatalog, alias: str) -> AliasStatus:
    """The alias's target, its rollback target and all its versions (oldest first)."""
    names = [n for n in await catalog.list_indexes() if version_of(alias, n) is not None]
    names.sort(key=lambda n: version_of(alias, n) or 0)
    target = await catalog.get_alias(alias)
    rollback = None
    if target is not None and target in names:
        older = [n for n in names if (version_of(alias, n) or 0) < (version_of(alias, target) or 0)]
        rollback = older[-1] if older else None
    return AliasStatus(alias, target, rollback, names)


async def next_version(catalog: IndexCatalog, alias: str) -> str:
    """The name of the next physical index, one above the newest that exists."""
    current = await status(catalog, alias)
    newest = max((version_of(alias, n) or 0 for n in current.versions), default=0)
    return f"{alias}-v{newest + 1}"


async def swap(catalog: IndexCatalog, alias: str, index: str) -> AliasStatus:
    """Point the alias at `index` (which must be a version of it and exist)."""
    if version_of(alias, index) is None:
        raise AliasError(f"{index} is not a version of alias {alias} (expected {alias}-v<N>)")
    if index not in await catalog.list_indexes():
        raise AliasError(f"index {index} does not exist")
    await catalog.set_alias(alias, index)
    return await status(catalog, alias)


async def rollback(catalog: IndexCatalog, alias: str) -> AliasStatus:
    """Point the alias back at the version before its target."""
    current = await status(catalog, alias)
    if current.rollback is None:
        raise AliasError(f"alias {alias} has no older version to roll back to")
    return await swap(catalog, alias, current.rollback)


async def prune(catalog: IndexCatalog, alias: str, keep: int) -> list[str]:
    """Delete old versions, keeping the newest `keep`, the alias target and the rollback target."""
    if keep < 1:
        raise AliasError("--keep must be at least 1")
    current = await status(catalog, alias)
    protected = {current.target, current.rollback, *current.versions[-keep:]}
    doomed = [n for n in current.versions if n not in protected]
    for name in doomed:
        await catalog.delete_index(name)
    return doomed
