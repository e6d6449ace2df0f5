"""How the fake search service ranks: tf-idf over the searchable text fields, exact cosine
over a vector field, reciprocal rank fusion of the two, and `orderby` when neither is asked.

Not Azure's scoring (BM25, HNSW), only its shape: hits best first, ties broken by key, a
vector leg limited to its `k`, and a hybrid query fused by rank with the service's constant.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

RRF_K = 60  # reciprocal rank fusion constant of hybrid ranking
_TOKEN = re.compile(r"[^\W_]+")


class QueryError(ValueError):
    """A vector query or an ordering the service would refuse (the fake answers 400)."""


def tokens(text: str) -> list[str]:
    """Lower-cased runs of letters and digits: the terms of a text."""
    return [t.lower() for t in _TOKEN.findall(text)]


def text_ranking(docs: list[dict[str, Any]], terms: list[str],
                 fields: Mapping[str, dict[str, Any]], key: str) -> list[tuple[str, float]]:
    """Documents matching any term in a searchable text field, by tf-idf, best first."""
    searchable = [n for n, f in fields.items() if f.get("searchable") and f["type"] == "Edm.String"]
    bags = [[t for n in searchable for t in tokens(str(d.get(n) or ""))] for d in docs]
    scored: list[tuple[str, float]] = []
    for doc, bag in zip(docs, bags, strict=True):
        score = 0.0
        for term in set(terms):
            tf = bag.count(term)
            if tf:
                df = sum(1 for b in bags if term in b)
                score += (1 + math.log(tf)) * math.log(1 + len(docs) / df)
        if score > 0:
            scored.append((doc[key], score))
    return sorted(scored, key=lambda kv: (-kv[1], kv[0]))


def vector_ranking(docs: list[dict[str, Any]], query: Mapping[str, Any],
                   fields: Mapping[str, dict[str, Any]], key: str) -> list[tuple[str, float]]:
    """The `k` documents nearest to the query vector by exact cosine, best first."""
    name, vector, k = query.get("fields"), query.get("vector"), query.get("k")
    spec = fields.get(str(name))
    if query.get("kind") != "vector" or spec is None or spec["type"] != "Collection(Edm.Single)":
        raise QueryError(f"vector query on unknown vector field {name!r}")
    if not isinstance(vector, list) or len(vector) != spec["dimensions"]:
        raise QueryError(f"the query vector must have {spec['dimensions']} dimensions")
    if not isinstance(k, int) or k < 1:
        raise QueryError("k must be a positive integer")
    candidates = [d for d in docs if d.get(name)]
    if not candidates:
        return []
    matrix = np.asarray([d[name] for d in candidates], dtype=np.float64)
    q = np.asarray(vector, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(q) or 1.0)
    sims = matrix @ q / np.where(norms == 0, 1.0, norms)
    # Azure's cosine score: 1 / (1 + distance), distance = 1 - similarity.
    scored = [(d[key], float(1.0 / (2.0 - s))) for d, s in zip(candidates, sims, strict=True)]
    return sorted(scored, key=lambda kv: (-kv[1], kv[0]))[:k]


def ordered(docs: list[dict[str, Any]], orderby: object,
            fields: Mapping[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Documents in `orderby` order (sortable fields only), then by key; key order if none."""
    if not orderby:
        return docs
    result = list(docs)
    for clause in reversed([c.strip() for c in str(orderby).split(",")]):
        name, _, direction = clause.partition(" ")
        spec = fields.get(name)
        if spec is None or not spec.get("sortable") or direction not in ("", "asc", "desc"):
            raise QueryError(f"cannot order by '{clause}': not a sortable field")
        present = [d for d in result if d.get(name) is not None]
        missing = [d for d in result if d.get(name) is None]
        present.sort(key=lambda d: d[name], reverse=direction == "desc")
        result = present + missing
    return result


def fused(rankings: list[list[tuple[str, float]]]) -> list[tuple[str, float]]:
    """One ranking as it is, or several fused by reciprocal rank, best first."""
    if len(rankings) == 1:
        return rankings[0]
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, (doc_key, _) in enumerate(ranking, start=1):
            scores[doc_key] = scores.get(doc_key, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
