"""The offline embedder is deterministic everywhere, unit-length, and lexical.

Invariants defended:
- the same text gives the same vector in another process with another hash seed (vectors are
  stored and reused, so Python's randomised `hash()` must play no part);
- every vector has `dimensions` components and unit length, blank text included;
- texts sharing words are closer than texts sharing none (it is lexical, not semantic);
- `model_id` names the scheme and the dimensions, so vectors are never reused across sizes.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from ingest.embedding import Embedder, OfflineEmbedder

TEXTS = ["Quarterly revenue grew in every region.", "Straße café naïve 中文", "", "   ", "a a a a b"]


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


async def test_vectors_are_unit_length_with_the_configured_dimensions() -> None:
    embedder = OfflineEmbedder(dimensions=64)
    vectors = await embedder.embed(TEXTS)
    assert len(vectors) == len(TEXTS)
    for vector in vectors:
        assert len(vector) == 64
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-9)
    assert vectors[2] == vectors[3]  # blank text: one fixed unit vector
    assert embedder.model_id == "offline-hash-v1-64"
    assert isinstance(embedder, Embedder)


def test_vectors_are_the_same_in_another_process_with_another_hash_seed() -> None:
    script = (
        "import json, sys; from ingest.embedding.offline import OfflineEmbedder; "
        "print(json.dumps(OfflineEmbedder(48).embed_sync(json.loads(sys.argv[1]))))"
    )
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", script, json.dumps(TEXTS)], env=env, capture_output=True, text=True, check=True
        )
        outputs.append(json.loads(done.stdout))
    assert outputs[0] == outputs[1] == OfflineEmbedder(48).embed_sync(TEXTS)


async def test_shared_words_make_texts_closer() -> None:
    embedder = OfflineEmbedder()
    query, near, far = await embedder.embed(
        ["vacation policy for employees", "the employee vacation policy explained", "quarterly tax filing deadline"]
    )
    assert _cosine(query, near) > _cosine(query, far) + 0.2


async def test_large_batches_keep_order_and_count() -> None:
    embedder = OfflineEmbedder(dimensions=16)
    texts = [f"text number {i}" for i in range(200)]  # above the inline limit: a worker thread
    assert await embedder.embed(texts) == embedder.embed_sync(texts)
    assert embedder.inputs == 200
