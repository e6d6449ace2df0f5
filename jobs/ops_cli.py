"""`spindex schedule` and `spindex doctor`: entry points only, the work is in jobs/scheduler.py and ingest/doctor.py.

`register(app)` adds both commands to the `spindex` app. `python -m jobs.ops_cli <command>` runs
them without the rest of the CLI.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import typer

from ingest.errors import ConfigError
from ingest.report import EXIT_CONFIG

_CONFIG_HELP = "YAML configuration file."


def schedule(
    config: Path | None = typer.Option(None, "--config", "-c", help=_CONFIG_HELP),
    run_now: list[str] = typer.Option(
        [], "--run-now", help="Also run this job once at start-up: delta, acl or full (repeatable)."
    ),
) -> None:
    """Run the delta, ACL and full jobs on their cron expressions (schedule.*) until SIGTERM.

    On SIGTERM a running job gets schedule.grace_seconds to finish (then it is cancelled; nothing
    unfinished is committed) and the process exits 0. Exit code 2: invalid configuration.
    """
    from ingest.config import load_settings
    from ingest.observability import check_otel, configure_logging
    from jobs.scheduler import MODES, serve_schedule

    configure_logging()
    log = logging.getLogger("spindex.scheduler")
    try:
        unknown = sorted(set(run_now) - set(MODES))
        if unknown:
            raise ConfigError(f"--run-now takes {', '.join(MODES)}; not {', '.join(unknown)}")
        settings = load_settings(config)
        configure_logging(settings=settings)
        check_otel(settings)
        code = asyncio.run(serve_schedule(settings, run_now=run_now, hard_exit=True))
    except ConfigError as exc:
        log.error("configuration error: %s", exc, extra={"exit_code": EXIT_CONFIG})
        raise typer.Exit(EXIT_CONFIG) from None
    raise typer.Exit(code)


def doctor(
    config: Path | None = typer.Option(None, "--config", "-c", help=_CONFIG_HELP),
    offline: bool = typer.Option(False, "--offline", help="Do not call the embeddings endpoint."),
    user: str | None = typer.Option(
        None, "--user", help="A user (UPN or object id) to probe the directory permissions with."
    ),
) -> None:
    """Check configuration, Graph sign-in and permissions, index, state and embedder; say what to fix.

    Exit code 0 when every check passes, 1 when one fails, 2 when the configuration does not load.
    """
    from ingest.doctor import diagnose
    from ingest.observability import configure_logging

    # The checks' own lines are the output; log records only from warnings up, unless asked.
    configure_logging(level=os.environ.get("SPINDEX_LOG_LEVEL", "WARNING").upper())
    diagnosis = asyncio.run(diagnose(config, offline=offline, user=user))
    for line in diagnosis.lines():
        typer.echo(line)
    problems = len(diagnosis.problems)
    typer.echo(f"{problems} problem{'s' if problems != 1 else ''} found" if problems else "all checks passed")
    raise typer.Exit(diagnosis.exit_code)


def register(app: typer.Typer) -> None:
    """Add the `schedule` and `doctor` commands to `app`."""
    app.command("schedule")(schedule)
    app.command("doctor")(doctor)


def main() -> None:
    """`python -m jobs.ops_cli`: these commands alone."""
    app = typer.Typer(help="spindex operations: schedule and doctor.", no_args_is_help=True)
    register(app)
    app()


if __name__ == "__main__":
    main()
