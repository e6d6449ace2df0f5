"""A deterministic embedder that needs no model and no network.

For demos and tests only: it is lexical, not semantic. Texts that share words get similar
vectors; synonyms and paraphrases do not. Search quality with it says nothing about search
quality with a real embedding model.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from ingest.tokens import DEFAULT_ENCODING, count_tokens
from ingest.embedding.base import MAX_INPUTS_PER_REQUEST

_WORD = re.compile(r"\w+")
_INLINE_LIMIT = 64  # texts embedded on the event loop; larger calls go to a worker thread


class OfflineEmbedder:
    """Feature hashing of lowercased word unigrams and bigrams into `dimensions` slots.

    Each feature lands in a slot chosen by a stable hash (BLAKE2b, not Python's per-process
    randomised `hash()`), with a sign from the same hash; counts are damped (1 + ln tf) and
    the vector is L2-normalised. The same text gives the same vector in every process and on
    every machine. A text without words gets one fixed unit vector.
    """

    def __init__(self, dimensions: int = 384) -> None:
        if dimensions < 2:
            raise ValueError(f"dimensions must be at least 2, got {dimensions}")
        self.dimensions = dimensions
        self.model_id = f"offline-hash-v1-{dimensions}"
        self.max_batch_inputs = MAX_INPUTS_PER_REQUEST
        self.encoding = DEFAULT_ENCODING  # what `tokens` counts in; only the report uses them
        self.requests = 0  # counters, as OpenAIEmbedder keeps them, for the run report
        self.inputs = 0
        self.tokens = 0

    async def embed(self, texts: Sequence[str], tokens: Sequence[int] | None = None) -> list[list[float]]:
        """One unit vector per text, in order; deterministic across processes. `tokens` (the
        texts' counts, when known) only feed the `tokens` counter."""
        if len(texts) <= _INLINE_LIMIT:
            vectors = self.embed_sync(texts)
        else:
            vectors = await asyncio.to_thread(self.embed_sync, texts)
        self.requests += 1
        self.inputs += len(texts)
        self.tokens += sum(tokens) if tokens is not None else sum(count_tokens(text) for text in texts)
        return vectors

    def embed_sync(self, texts: Sequence[str]) -> list[list[float]]:
        """`embed` without the event loop, for tests and fakes."""
        return [embed_text(text, self.dimensions) for text in texts]

    async def close(self) -> None:
        """Nothing to release."""


def embed_text(text: str, dimensions: int) -> list[float]:
    """The offline vector of one text (see `OfflineEmbedder`)."""
    words = _WORD.findall(text.lower())
    features = Counter(words)
    features.update(f"{a} {b}" for a, b in zip(words, words[1:]))
    vector = np.zeros(dimensions, dtype=np.float64)
    if not features:
        vector[0] = 1.0
        return vector.tolist()
    for feature, count in sorted(features.items()):  # sorted: summation order is fixed too
        slot, sign = _slot(feature, dimensions)
        vector[slot] += sign * (1.0 + math.log(count))
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:  # every feature cancelled out: rare, but the vector must stay unit length
        vector[0] = 1.0
        return vector.tolist()
    return (vector / norm).tolist()


@functools.lru_cache(maxsize=1 << 16)
def _slot(feature: str, dimensions: int) -> tuple[int, float]:
    """The slot and sign of one feature: a pure function, so caching it is safe."""
    digest = int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "big")
    return digest % dimensions, (1.0 if digest >> 63 else -1.0)
