"""The `spindex` command line: entry points only, the work is done in `ingest/`."""

from __future__ import annotations

import asyncio
import sys
from contextlib import nullcontext as _nullcontext
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ingest.config import Settings, load_settings
from ingest.errors import ConfigError, SpindexError
from ingest.models import DriveRef
from ingest.observability import check_otel, configure_logging
from ingest.report import EXIT_ABORTED, EXIT_CONFIG, RunReport
from jobs.ops_cli import register as register_ops

app = typer.Typer(help="Keep an Azure AI Search index in step with SharePoint Online, security-trimmed.", no_args_is_help=True)
run_app = typer.Typer(help="Run a sync job once.", no_args_is_help=True)
sandbox_app = typer.Typer(help="The local sandbox SharePoint tenant.", no_args_is_help=True)
alias_app = typer.Typer(help="The alias readers query.", no_args_is_help=True)
index_app = typer.Typer(help="The physical indexes behind the alias.", no_args_is_help=True)
app.add_typer(run_app, name="run")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(alias_app, name="alias")
app.add_typer(index_app, name="index")
register_ops(app)
# Piped output (CI logs, `make demo | tee`) gets a fixed width rather than rich's 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=110)
err = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=110)

ConfigOption = typer.Option(None, "--config", "-c", help="YAML configuration file.", exists=False)


def _settings(config: Path | None, **overrides: Any) -> Settings:
    try:
        settings = load_settings(config, **overrides)
        configure_logging(settings=settings)
        check_otel(settings)
        return settings
    except ConfigError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_CONFIG) from None


class _ProgressDisplay:
    """A live line per library while a sync runs."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def __call__(self, event: str, drive: DriveRef | None, n: int) -> None:
        if drive is None:
            return
        if drive.drive_id not in self.tasks:
            label = f"{drive.site.name} / {drive.name}"
            self.tasks[drive.drive_id] = self.progress.add_task(label, total=None, items=0)
        task = self.tasks[drive.drive_id]
        self.progress.update(task, advance=n)


def _sync(settings: Settings, *, full: bool, allow_mass_delete: bool = False) -> RunReport:
    from ingest.runs import run_sync

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed:.0f} items"), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=False, disable=not err.is_terminal) as progress:
        display = _ProgressDisplay(progress)
        report = asyncio.run(run_sync(settings, full=full, progress=display, allow_mass_delete=allow_mass_delete))
    _print_report(report)
    return report


_COLUMNS = {
    "created": "new",
    "content_changed": "edited",
    "metadata_only": "moved",
    "acl_only": "acl",
    "unchanged": "same",
    "deleted": "deleted",
    "skipped": "skipped",
    "failed": "failed",
}


def _print_report(report: RunReport) -> None:
    table = Table(title=f"{report.mode} run {report.run_id}: {report.status}", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("library", no_wrap=True, overflow="ellipsis", max_width=34)
    for header in _COLUMNS.values():
        table.add_column(header, justify="right")
    for row in report.as_dict()["libraries"].values():  # type: ignore[union-attr]
        table.add_row(row["name"], *(str(row[k]) for k in _COLUMNS))
    console.print(table)
    for problem in report.skipped:
        console.print(f"  skipped [yellow]{problem.path.rstrip('/')}/{problem.name}[/yellow]: {problem.reason} ({problem.message})")
    for problem in report.failed:
        console.print(f"  failed  [red]{problem.path.rstrip('/')}/{problem.name}[/red]: {problem.reason} ({problem.message})")
    graph = report.graph
    console.print(
        f"  graph requests {graph.get('requests_total', 0)}, throttled {graph.get('throttled', 0)}, "
        f"downloaded {graph.get('bytes_downloaded', 0)} bytes; embedded {report.embedding.get('inputs', 0)} chunks "
        f"({report.embedding.get('tokens', 0)} tokens, {report.embedding.get('reused', 0)} reused); {report.duration_s:.1f} s"
    )
    if report.abort_reason:
        err.print(f"[red]aborted: {report.abort_reason}[/red]")


MassDeleteOption = typer.Option(
    False, "--allow-mass-delete", help="Allow a run to delete more than sync.mass_delete_share of a library."
)


@run_app.command("full")
def run_full(config: Path | None = ConfigOption, allow_mass_delete: bool = MassDeleteOption) -> None:
    """Enumerate every library in full and reconcile the index with it."""
    report = _sync(_settings(config), full=True, allow_mass_delete=allow_mass_delete)
    raise typer.Exit(report.exit_code)


@run_app.command("delta")
def run_delta(config: Path | None = ConfigOption, allow_mass_delete: bool = MassDeleteOption) -> None:
    """Apply the changes since the last run of each library (a new library is enumerated in full)."""
    report = _sync(_settings(config), full=False, allow_mass_delete=allow_mass_delete)
    raise typer.Exit(report.exit_code)


@run_app.command("acl")
def run_acl(config: Path | None = ConfigOption) -> None:
    """Re-read every indexed item's permissions and merge what changed (no download, no embedding)."""
    from ingest.runs import run_acl_sweep

    settings = _settings(config)
    with err.status("sweeping permissions", spinner="dots") if err.is_terminal else _nullcontext():
        report = asyncio.run(run_acl_sweep(settings))
    _print_report(report)
    raise typer.Exit(report.exit_code)


@run_app.command("reindex")
@app.command()
def reindex(
    config: Path | None = ConfigOption,
    no_swap: bool = typer.Option(False, "--no-swap", help="Build and validate, but leave the alias where it is."),
    from_source: bool = typer.Option(False, "--from-source", help="Download and extract again instead of using staging."),
) -> None:
    """Rebuild the index beside the live one with the current settings, then swap the alias."""
    from ingest.runs import run_reindex

    settings = _settings(config)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed:.0f} items"), TimeElapsedColumn())
    with Progress(*columns, console=err, disable=not err.is_terminal) as progress:
        report = asyncio.run(run_reindex(settings, swap=not no_swap, from_source=from_source, progress=_ProgressDisplay(progress)))
    _print_report(report)
    rebuild = report.rebuild
    if rebuild:
        verb = "alias now points at" if rebuild.get("swapped") else "built, alias unchanged:"
        console.print(f"  {verb} {rebuild.get('index')} (previous: {rebuild.get('previous')})")
    raise typer.Exit(report.exit_code)


def _catalog_call(config: Path | None, work: Any) -> Any:
    from ingest.components import build_catalog

    settings = _settings(config)

    async def go() -> Any:
        catalog = build_catalog(settings)
        try:
            return await work(catalog, settings.index.alias)
        finally:
            close = getattr(catalog, "close", None)
            if close is not None:
                await close()

    try:
        return asyncio.run(go())
    except (SpindexError, ValueError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_ABORTED) from None


def _print_status(status: Any) -> None:
    console.print(f"alias {status.alias} -> {status.target or '(none)'}; rollback target: {status.rollback or '(none)'}")
    for name in status.versions:
        mark = "  <- alias" if name == status.target else ("  <- rollback" if name == status.rollback else "")
        console.print(f"  {name}{mark}")


@alias_app.command("show")
def alias_show(config: Path | None = ConfigOption) -> None:
    """Where the alias points, and the rollback target."""
    from ingest import aliases

    _print_status(_catalog_call(config, aliases.status))


@alias_app.command("swap")
def alias_swap(index: str = typer.Argument(..., help="Physical index, <alias>-v<N>."), config: Path | None = ConfigOption) -> None:
    """Point the alias at another physical index."""
    from ingest import aliases

    _print_status(_catalog_call(config, lambda catalog, alias: aliases.swap(catalog, alias, index)))


@alias_app.command("rollback")
def alias_rollback(config: Path | None = ConfigOption) -> None:
    """Point the alias back at the previous version."""
    from ingest import aliases

    _print_status(_catalog_call(config, aliases.rollback))


@index_app.command("list")
def index_list(config: Path | None = ConfigOption) -> None:
    """The physical indexes of the alias."""
    from ingest import aliases

    _print_status(_catalog_call(config, aliases.status))


@index_app.command("prune")
def index_prune(keep: int = typer.Option(2, help="How many of the newest versions to keep."), config: Path | None = ConfigOption) -> None:
    """Delete old versions; never the alias target or the rollback target."""
    from ingest import aliases

    deleted = _catalog_call(config, lambda catalog, alias: aliases.prune(catalog, alias, keep))
    console.print("deleted: " + (", ".join(deleted) if deleted else "nothing"))


@app.command()
def search(
    query: str = typer.Argument(..., help="What to search for."),
    as_user: str = typer.Option(..., "--as", help="User principal name or object id of the reader."),
    top: int = typer.Option(5, help="How many results."),
    config: Path | None = ConfigOption,
) -> None:
    """Search the index as a user: only what SharePoint lets that user read is returned."""
    from ingest.runs import search_as

    settings = _settings(config)
    try:
        reader, hits = asyncio.run(search_as(settings, query, as_user, top=top))
    except SpindexError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_ABORTED) from None
    _print_hits(query, reader.display_name, hits)


def _print_hits(query: str, who: str, hits: list[Any]) -> None:
    console.print(f"[bold]{who}[/bold] asks: {query}")
    if not hits:
        console.print("  (nothing this user may read matches)")
    for rank, hit in enumerate(hits, 1):
        pages = f" p.{hit.page_start}" + (f"-{hit.page_end}" if hit.page_end and hit.page_end != hit.page_start else "") if hit.page_start else ""
        console.print(f"  {rank}. {hit.title}{pages}  [dim]{hit.path}[/dim]")


@sandbox_app.command("serve")
def sandbox_serve(
    tenant: str = typer.Option("demo", help="Tenant file, or `demo`."),
    port: int = typer.Option(0, help="Port on 127.0.0.1 (0: any free port)."),
) -> None:
    """Serve the sandbox tenant until Ctrl-C, printing the settings that point spindex at it."""
    from jobs.demo import serve_sandbox

    serve_sandbox(tenant, port, console)


@app.command()
def demo(data_dir: Path = typer.Option(Path(".spindex/demo"), help="Where the demo keeps its index and state.")) -> None:
    """Start the sandbox, sync it, and ask questions as different users to show security trimming."""
    from jobs.demo import run_demo

    raise typer.Exit(run_demo(data_dir, console, sync=_sync, print_hits=_print_hits))


def main() -> None:
    """Console-script entry point."""
    configure_logging()
    app()
