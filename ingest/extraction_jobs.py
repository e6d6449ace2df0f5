"""The jobs extraction workers run: importable by name, and light to import (no Graph or index
clients), so that the workers' fork server loads only what extraction and chunking need."""

from __future__ import annotations

import functools

from ingest.chunking import Chunker
from ingest.extract import extract
from ingest.models import Chunk, Extracted

ChunkParams = tuple[int, int, str]  # chunk_tokens, overlap_tokens, encoding: enough to rebuild a Chunker


def extract_and_chunk(
    name: str, mime_type: str | None, content: bytes, params: ChunkParams, keep_text: bool
) -> tuple[Extracted | None, list[Chunk]]:
    """A file's chunks, and its extracted text when `keep_text`; BadInput when it cannot be indexed.

    Pure and importable by name, so that a worker process can run it.
    """
    extracted = extract(name, mime_type, content)
    return (extracted if keep_text else None), _chunker(params).chunk(extracted)


def chunk_text(extracted: Extracted, params: ChunkParams) -> list[Chunk]:
    """The chunks of already extracted text (a staged extraction), for a worker process."""
    return _chunker(params).chunk(extracted)


@functools.lru_cache(maxsize=4)
def _chunker(params: ChunkParams) -> Chunker:
    return Chunker(*params)
