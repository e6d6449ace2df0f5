"""Vectors for chunks: the `Embedder` protocol and its implementations.

    Embedder          the protocol the pipeline codes against (base.py)
    OfflineEmbedder   deterministic, no model, no network: demos and tests (offline.py)
    OpenAIEmbedder    OpenAI and Azure OpenAI through the openai SDK (openai_embedder.py)

`OpenAIEmbedder` is imported on first use: the openai SDK takes most of a second to import,
which commands that never embed should not pay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingest.embedding.base import Embedder
from ingest.embedding.offline import OfflineEmbedder

if TYPE_CHECKING:
    from ingest.embedding.openai_embedder import OpenAIEmbedder

__all__ = ["Embedder", "OfflineEmbedder", "OpenAIEmbedder"]


def __getattr__(name: str) -> object:
    if name == "OpenAIEmbedder":
        from ingest.embedding.openai_embedder import OpenAIEmbedder

        return OpenAIEmbedder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
