"""`spindex reindex`: a new physical index built beside the live one, then an alias swap.

A rebuild is a full sync into `<alias>-v<N+1>` with the current chunking and embedding
settings, taking vectors from the live index wherever the chunk text and the model are the
same. Each physical index has its own cursors, so delta runs keep the live index current while
the rebuild runs. Before the swap both indexes catch up with one delta each; the rebuild then
checks that every library holds the same items in both and that the configured sample queries
answer, and only then points the alias at the new index. The old index stays for rollback.
"""

from __future__ import annotations

from ingest.aliases import next_version
from ingest.components import Parts
from ingest.config import Settings
from ingest.errors import SystemicError
from ingest.index.base import IndexStore
from ingest.pipeline import Pipeline, ProgressFn
from ingest.report import RunReport


class RebuildInvalid(SystemicError):
    """The new index does not match the live one; the alias was left where it was."""


def _pipeline(settings: Settings, parts: Parts, index: IndexStore, report: RunReport,
              progress: ProgressFn | None, reuse_from: IndexStore | None = None) -> Pipeline:
    return Pipeline(
        settings=settings, source=parts.source, index=index, embedder=parts.embedder, chunker=parts.chunker,
        state=parts.state, report=report, site_groups=parts.site_groups, progress=progress, reuse_from=reuse_from,
        staging=parts.staging, extraction=parts.extraction,
    )


async def rebuild(settings: Settings, parts: Parts, report: RunReport, *, swap: bool, progress: ProgressFn | None) -> str:
    """Build the next version of the alias's index; returns its name. Swaps unless `swap` is False."""
    assert settings.embedding.dimensions is not None
    alias, catalog = settings.index.alias, parts.catalog
    live_name = await catalog.get_alias(alias)
    name = await next_version(catalog, alias)
    new = await catalog.create_index(name, settings.embedding.dimensions)
    live = await catalog.open_index(live_name) if live_name else None
    try:
        report.rebuild = {"index": name, "previous": live_name, "swapped": False}
        await _pipeline(settings, parts, new, report, progress, reuse_from=live).run(full=True)
        catch_up = RunReport(mode="delta")  # both indexes take in what changed during the build
        await _pipeline(settings, parts, new, catch_up, progress, reuse_from=live).run(full=False)
        if live is not None:
            await _pipeline(settings, parts, live, catch_up, progress).run(full=False)
        report.rebuild["catch_up"] = {k: v for k, v in catch_up.totals().items() if v}
        problems = await _validate(settings, parts, live, new)
        report.rebuild["validation"] = problems or "ok"
        if problems:
            raise RebuildInvalid(f"{name} was built but not swapped: " + "; ".join(problems))
        if swap:
            await catalog.set_alias(alias, name)
            report.rebuild["swapped"] = True
    finally:
        await new.close()
        if live is not None:
            await live.close()
    return name


async def _validate(settings: Settings, parts: Parts, live: IndexStore | None, new: IndexStore) -> list[str]:
    problems: list[str] = []
    if live is not None:
        for drive in await parts.source.drives():
            before = len(await live.drive_items(drive.drive_id))
            after = len(await new.drive_items(drive.drive_id))
            if before != after:
                problems.append(f"{drive.site.name} / {drive.name}: {after} items, live index has {before}")
    for query in settings.index.validation_queries:
        vector = (await parts.embedder.embed([query]))[0]
        if not await new.search(query, vector, security=None, top=1):
            problems.append(f"sample query {query!r} found nothing")
    return problems
