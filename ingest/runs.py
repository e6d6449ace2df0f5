"""What the entry points run: syncs, the ACL sweep, rebuilds, and a trimmed search as a user.

The CLI, the scheduler and `python -m jobs` call these; they hold no logic of their own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ingest.components import Parts, live_index, open_parts
from ingest.config import Settings
from ingest.errors import SystemicError
from ingest.graph.client import GraphClient
from ingest.index.base import IndexStore
from ingest.models import SearchHit
from ingest.pipeline import Pipeline, ProgressFn
from ingest.query import EVERYONE, EVERYONE_EXCEPT_EXTERNAL, SecurityFilter, security_filter
from ingest.observability import record_run_metrics, run_context
from ingest.report import RunReport

log = logging.getLogger(__name__)


async def _reported(
    settings: Settings,
    report: RunReport,
    work: Callable[[Parts], Awaitable[None]],
    *,
    from_source: bool = False,
    extracting: bool = False,
) -> RunReport:
    """Run `work` with the parts of a run, then close the report and write it.

    A systemic failure ends the run as "aborted" (the report says why); it is not raised.
    """
    with run_context(report.run_id):
        try:
            async with open_parts(settings, from_source=from_source, extracting=extracting) as parts:
                try:
                    await work(parts)
                    report.finish()
                finally:
                    report.graph = parts.graph.stats_dict()
                    report.graph["sharepoint_rest_requests"] = parts.rest.requests
        except SystemicError as exc:
            report.finish("aborted", f"{type(exc).__name__}: {exc}")
        report.write(settings.reports_dir)
        log.info("%s run %s: %s (exit %d)", report.mode, report.run_id, report.status, report.exit_code)
    record_run_metrics(report, settings=settings)
    return report


async def _alias_target(parts: Parts, settings: Settings) -> IndexStore:
    target = await parts.catalog.get_alias(settings.index.alias)
    if target is None:
        raise SystemicError(f"no index behind alias {settings.index.alias!r} yet: run `spindex run full` first")
    return await parts.catalog.open_index(target)


async def run_sync(
    settings: Settings,
    *,
    full: bool,
    progress: ProgressFn | None = None,
    allow_mass_delete: bool = False,
    stop: asyncio.Event | None = None,
) -> RunReport:
    """Run a full or delta sync of every configured library into the alias's index."""
    report = RunReport(mode="full" if full else "delta")

    async def work(parts: Parts) -> None:
        assert settings.embedding.dimensions is not None
        index = await live_index(parts.catalog, settings.index.alias, settings.embedding.dimensions)
        pipeline = Pipeline(
            settings=settings, source=parts.source, index=index, embedder=parts.embedder, chunker=parts.chunker,
            state=parts.state, report=report, site_groups=parts.site_groups, progress=progress,
            allow_mass_delete=allow_mass_delete, staging=parts.staging, stop=stop, extraction=parts.extraction,
        )
        try:
            await pipeline.run(full=full)
        finally:
            await index.close()

    return await _reported(settings, report, work, extracting=True)


async def run_reindex(
    settings: Settings, *, swap: bool = True, from_source: bool = False, progress: ProgressFn | None = None
) -> RunReport:
    """Rebuild the alias's index beside the live one and swap when it validates."""
    from ingest.rebuild import rebuild

    report = RunReport(mode="reindex")

    async def work(parts: Parts) -> None:
        await rebuild(settings, parts, report, swap=swap, progress=progress)

    return await _reported(settings, report, work, from_source=from_source, extracting=True)


async def run_acl_sweep(settings: Settings) -> RunReport:
    """Re-read every indexed item's permissions and merge what changed."""
    from ingest.acl_sweep import AclSweep

    report = RunReport(mode="acl")

    async def work(parts: Parts) -> None:
        index = await _alias_target(parts, settings)
        try:
            sweep = AclSweep(settings=settings, source=parts.source, index=index, state=parts.state,
                             report=report, site_groups=parts.site_groups)
            await sweep.run()
        finally:
            await index.close()

    return await _reported(settings, report, work)


@dataclass(frozen=True, slots=True)
class Reader:
    """Who is searching: the user and the principals the security filter admits."""

    user_id: str
    display_name: str
    is_guest: bool
    security: SecurityFilter


async def resolve_reader(graph: GraphClient, settings: Settings, user: str) -> Reader:
    """Who `user` (UPN or object id) is, and the security filter for what they may read."""
    entry = await graph.user(user)
    groups = await graph.transitive_group_ids(entry.id)
    is_guest = (entry.user_type or "").lower() == "guest"
    principals: list[str] = []
    if settings.acl.everyone_claims:
        principals = [EVERYONE] if is_guest else [EVERYONE, EVERYONE_EXCEPT_EXTERNAL]
    security = security_filter(entry.id, groups, principal_values=principals)
    return Reader(entry.id, entry.display_name or user, is_guest, security)


async def search_as(settings: Settings, query: str, user: str, *, top: int = 5) -> tuple[Reader, list[SearchHit]]:
    """Search the alias as `user` (UPN or object id): only what that user may read comes back."""
    async with open_parts(settings) as parts:
        reader = await resolve_reader(parts.graph, settings, user)
        index = await _alias_target(parts, settings)
        try:
            vector = (await parts.embedder.embed([query]))[0]
            hits = await index.search(query, vector, security=reader.security, top=top)
        finally:
            await index.close()
        return reader, hits
