"""`spindex demo` and `spindex sandbox serve`: the sandbox tenant, a full sync, trimmed answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from ingest.config import load_settings
from ingest.errors import SpindexError
from ingest.report import EXIT_ABORTED, EXIT_OK, RunReport


def sandbox_overrides(server: Any, tenant: Any) -> dict[str, Any]:
    """Settings that point spindex at a running sandbox server."""
    return {
        "graph": {
            "auth": "sandbox",
            "base_url": server.graph_url,
            "tenant_id": tenant.tenant_id,
            "sharepoint_url": server.base_url,
        }
    }


def serve_sandbox(tenant_name: str, port: int, console: Console) -> None:
    """Serve a sandbox tenant until interrupted."""
    from sandbox.server import SandboxServer
    from sandbox.tenant import load_tenant

    tenant = load_tenant(tenant_name)
    with SandboxServer(tenant, port=port) as server:
        console.print(f"sandbox tenant {tenant.tenant_id} serving on {server.base_url}")
        console.print("point spindex at it with:")
        console.print(f"  export SPINDEX_GRAPH__AUTH=sandbox SPINDEX_GRAPH__BASE_URL={server.graph_url}")
        console.print(f"  export SPINDEX_GRAPH__TENANT_ID={tenant.tenant_id} SPINDEX_GRAPH__SHAREPOINT_URL={server.base_url}")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            console.print("stopped")


def run_demo(
    data_dir: Path,
    console: Console,
    *,
    sync: Callable[..., RunReport],
    print_hits: Callable[[str, str, list[Any]], None],
) -> int:
    """Sync the demo tenant into a local index, then ask its demo questions as different users."""
    from ingest.runs import search_as
    from sandbox.server import SandboxServer
    from sandbox.tenant import load_tenant

    tenant = load_tenant("demo")
    with SandboxServer(tenant) as server:
        settings = load_settings(None, data_dir=data_dir, **sandbox_overrides(server, tenant))
        console.rule("[bold]spindex demo[/bold]: a full sync of the sandbox tenant")
        console.print(
            f"sandbox tenant on {server.base_url}; local index in {data_dir}; "
            "offline embedder (deterministic and lexical, for demos and tests: not semantic)"
        )
        report = sync(settings, full=True)
        if report.status == "aborted":
            return EXIT_ABORTED
        console.rule("[bold]security trimming[/bold]: the same question, asked by different people")
        for question in tenant.demo_questions:
            for who in (question.visible_to, question.hidden_from):
                try:
                    reader, hits = asyncio.run(search_as(settings, question.question, who, top=3))
                except SpindexError as exc:
                    console.print(f"[red]search failed: {exc}[/red]")
                    return EXIT_ABORTED
                print_hits(question.question, f"{reader.display_name} <{who}>", hits)
                titles = [hit.title for hit in hits]
                shown = question.document in titles
                verdict = "[green]returned[/green]" if shown else "[yellow]withheld[/yellow]"
                console.print(f"  -> {question.document}: {verdict}\n")
        console.print(f"run report: {settings.reports_dir / 'latest.json'}")
    return EXIT_OK
