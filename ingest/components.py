"""Builds the parts of a run from Settings: Graph client, source, index, embedder, state.

The only place that turns configuration into objects; `pipeline.py` receives them ready-made,
and tests build them the same way against the local servers.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ingest.acl import ClaimsSiteGroupResolver
from ingest.budget import embedding_budget, graph_budget
from ingest.chunking import Chunker
from ingest.config import Settings
from ingest.embedding import Embedder, OfflineEmbedder, OpenAIEmbedder
from ingest.errors import ConfigError
from ingest.extraction_pool import ExtractionPool
from ingest.graph.auth import build_azure_credential, build_graph_credential
from ingest.graph.client import GraphClient
from ingest.graph.sharepoint_rest import SharePointRest
from ingest.index.base import IndexCatalog, IndexStore
from ingest.index.local import LocalIndexCatalog
from ingest.source import SharePointSource
from ingest.staging import BlobStaging, LocalStaging, Staging
from ingest.state.base import StateStore
from ingest.state.local import LocalStateStore


def build_embedder(settings: Settings) -> Embedder:
    """The configured embedder; the offline one needs nothing but its dimensions."""
    config = settings.embedding
    assert config.dimensions is not None  # filled in by the settings validator
    if config.provider == "offline":
        return OfflineEmbedder(dimensions=config.dimensions)
    key = config.api_key.get_secret_value() if config.api_key else None
    if config.provider == "openai":
        if key is None:
            raise ConfigError("embedding.api_key is required for provider openai")
        return OpenAIEmbedder(
            model=config.model,
            dimensions=config.dimensions,
            base_url=config.endpoint,
            api_key=key,
            max_batch_inputs=config.batch_inputs,
            budget=embedding_budget(settings.budget),
        )
    token_provider = None
    if key is None:
        from azure.identity import get_bearer_token_provider

        token_provider = get_bearer_token_provider(
            build_azure_credential(settings.azure, graph=settings.graph, asynchronous=False),
            "https://cognitiveservices.azure.com/.default",
        )
    return OpenAIEmbedder(
        model=config.model,
        dimensions=config.dimensions,
        endpoint=config.endpoint,
        deployment=config.deployment,
        api_version=config.api_version,
        api_key=key,
        token_provider=token_provider,
        max_batch_inputs=config.batch_inputs,
        budget=embedding_budget(settings.budget),
    )


def build_catalog(settings: Settings) -> IndexCatalog:
    """The index service: the local SQLite catalog, or Azure AI Search."""
    config = settings.index
    if config.backend == "local":
        return LocalIndexCatalog(settings.index_dir)
    from ingest.index.azure import AzureIndexCatalog

    if not config.endpoint:
        raise ConfigError("index.endpoint is required for index.backend=azure")
    if config.api_key is not None:
        from azure.core.credentials import AzureKeyCredential

        credential: Any = AzureKeyCredential(config.api_key.get_secret_value())
    else:
        credential = build_azure_credential(settings.azure, graph=settings.graph)
    return AzureIndexCatalog(config.endpoint, credential)


def _blob_service(settings: Settings) -> Any:
    from azure.storage.blob.aio import BlobServiceClient

    config = settings.state
    if config.blob_connection_string is not None:
        return BlobServiceClient.from_connection_string(config.blob_connection_string.get_secret_value())
    if config.blob_account_url:
        return BlobServiceClient(config.blob_account_url, credential=build_azure_credential(settings.azure, graph=settings.graph))
    raise ConfigError("state.blob_account_url or state.blob_connection_string is required for state.backend=blob")


def build_state(settings: Settings) -> StateStore:
    """Where cursors and leases live."""
    if settings.state.backend == "local":
        return LocalStateStore(settings.state_dir)
    from ingest.state.blob import BlobStateStore

    return BlobStateStore(_blob_service(settings), settings.state.blob_container, lease_seconds=settings.state.lease_seconds)


def build_staging(settings: Settings, *, from_source: bool = False) -> Staging:
    """Where extracted text is kept between runs: beside the state."""
    if settings.state.backend == "local":
        return LocalStaging(settings.data_dir / "staging", read=not from_source)
    return BlobStaging(_blob_service(settings), settings.state.staging_container, read=not from_source)


async def live_index(catalog: IndexCatalog, alias: str, dimensions: int) -> IndexStore:
    """The physical index behind `alias`, creating `<alias>-v1` on the very first run."""
    target = await catalog.get_alias(alias)
    if target is None:
        name = f"{alias}-v1"
        if name in await catalog.list_indexes():
            store = await catalog.open_index(name)
        else:
            store = await catalog.create_index(name, dimensions)
        await catalog.set_alias(alias, name)
        return store
    return await catalog.open_index(target)


@dataclass
class Parts:
    """Everything a run talks to, closed together."""

    graph: GraphClient
    source: SharePointSource
    rest: SharePointRest
    site_groups: ClaimsSiteGroupResolver
    catalog: IndexCatalog
    embedder: Embedder
    chunker: Chunker
    state: StateStore
    staging: Staging
    extraction: ExtractionPool


@contextlib.asynccontextmanager
async def open_parts(
    settings: Settings, *, from_source: bool = False, extracting: bool = False
) -> AsyncIterator[Parts]:
    """Build the parts of a run from settings and close them all afterwards.

    `extracting`: the run will extract documents, so its workers start first, beside the rest.
    """
    extraction = ExtractionPool(settings.sync.extract_processes)
    if extracting:
        extraction.start()
    credential: Any = build_graph_credential(settings.graph)
    graph = GraphClient(settings.graph, credential, budget=graph_budget(settings.budget))
    rest = SharePointRest(credential, base_url_override=settings.graph.sharepoint_url, retrier=graph.retrier)
    embedder = build_embedder(settings)
    parts = Parts(
        graph=graph,
        source=SharePointSource(graph, settings.graph),
        rest=rest,
        site_groups=ClaimsSiteGroupResolver(rest, graph, settings.acl),
        catalog=build_catalog(settings),
        embedder=embedder,
        chunker=Chunker(settings.chunking.chunk_tokens, settings.chunking.overlap_tokens),
        state=build_state(settings),
        staging=build_staging(settings, from_source=from_source),
        extraction=extraction,
    )
    try:
        yield parts
    finally:
        extraction.close()
        await rest.close()
        await embedder.close()
        await graph.close()
        close_catalog = getattr(parts.catalog, "close", None)
        if close_catalog is not None:
            await close_catalog()
        for part in (parts.state, parts.staging):
            close = getattr(part, "close", None)
            if close is not None:
                await close()
