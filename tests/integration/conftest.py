"""Fixtures that run spindex as a user would: real SDKs over HTTP against local servers.

Graph calls go through msgraph-sdk to the sandbox tenant; embeddings through the openai SDK to
a fake OpenAI-compatible server; the index is the local backend behind its alias.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ingest.components import build_catalog
from ingest.config import Settings, load_settings
from ingest.report import RunReport
from ingest.runs import run_sync
from jobs.demo import sandbox_overrides
from sandbox.server import SandboxServer
from sandbox.tenant import Tenant, load_tenant
from tests.fakes.embeddings_server import FakeEmbeddingsServer

EMBEDDING_DIMENSIONS = 64
EMBEDDING_KEY = "test-key"
# The sandbox and the fake endpoint have no quotas unless a test gives them one: no client pacing.
UNPACED = {"graph_ru_per_minute": None, "embedding_tokens_per_minute": None, "embedding_requests_per_minute": None}


def spindex_settings(server: SandboxServer, tenant: Tenant, data_dir: Path, embeddings: FakeEmbeddingsServer | None, **extra: Any) -> Settings:
    """Settings for a sandbox, a data folder and (optionally) the fake embeddings endpoint."""
    overrides: dict[str, Any] = {"data_dir": data_dir, **sandbox_overrides(server, tenant), "budget": UNPACED}
    if embeddings is not None:
        overrides["embedding"] = {
            "provider": "openai",
            "model": "text-embedding-3-small",
            "dimensions": EMBEDDING_DIMENSIONS,
            "endpoint": embeddings.base_url + "/v1",
            "api_key": EMBEDDING_KEY,
        }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(overrides.get(key), dict):
            overrides[key] = {**overrides[key], **value}
        else:
            overrides[key] = value
    return load_settings(None, **overrides)


async def read_documents(settings: Settings) -> list[dict[str, object]]:
    """Every document of the index behind the alias, with all fields, sorted by key."""
    catalog = build_catalog(settings)
    target = await catalog.get_alias(settings.index.alias)
    assert target is not None, "no index behind the alias"
    store = await catalog.open_index(target)
    try:
        return await store.documents()
    finally:
        await store.close()


def index_documents(settings: Settings) -> list[dict[str, object]]:
    """`read_documents` for synchronous tests."""
    return asyncio.run(read_documents(settings))


def sync(settings: Settings, *, full: bool) -> RunReport:
    """Run one sync as the CLI does and return its report."""
    return asyncio.run(run_sync(settings, full=full))


@dataclass
class SyncedTenant:
    """A sandbox tenant after one full sync into a fresh local index."""

    tenant: Tenant
    server: SandboxServer
    embeddings: FakeEmbeddingsServer
    settings: Settings
    report: RunReport


@pytest.fixture(scope="module")
def synced_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncedTenant]:
    tenant = load_tenant("demo")
    with SandboxServer(tenant) as server, FakeEmbeddingsServer(dimensions=EMBEDDING_DIMENSIONS, keys=(EMBEDDING_KEY,)) as embeddings:
        settings = spindex_settings(server, tenant, tmp_path_factory.mktemp("demo-sync"), embeddings)
        report = sync(settings, full=True)
        assert report.status == "ok", report.as_dict()
        yield SyncedTenant(tenant, server, embeddings, settings, report)
