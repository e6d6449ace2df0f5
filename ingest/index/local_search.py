"""Ranking pieces of the local index: FTS5 query escaping, exact cosine search, RRF fusion,
and the in-memory principal index that trims both legs.

Kept apart from the storage code in `local_store.py` so each can be tested and read alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ingest.query import SecurityFilter

RRF_K = 60  # the reciprocal rank fusion constant Azure AI Search documents for hybrid ranking
MAX_QUERY_TERMS = 64  # a longer query adds cost and no ranking signal worth having


def query_terms(text: str) -> list[str]:
    """The distinct whitespace-separated terms of a user's query that can match anything,
    in order, at most `MAX_QUERY_TERMS` of them."""
    # NUL ends an FTS5 string early and lone surrogates cannot be encoded: both become spaces.
    cleaned = "".join(" " if ch == "\x00" or "\ud800" <= ch <= "\udfff" else ch for ch in text)
    terms: list[str] = []
    for term in cleaned.split():
        if not any(ch.isalnum() for ch in term):
            continue  # pure punctuation tokenises to nothing
        if term not in terms:
            terms.append(term)
        if len(terms) == MAX_QUERY_TERMS:
            break
    return terms


def match_expression(terms: Sequence[str]) -> str | None:
    """An FTS5 MATCH expression that ORs the terms, each as a quoted string; None if no terms.

    Quoting makes every operator, column filter, prefix `*` or parenthesis in a term plain
    text, like Azure's default `searchMode=any`. Any terms at all are safe to MATCH afterwards.
    """
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms) or None


def fts_query(text: str) -> str | None:
    """The MATCH expression for a user's query text, or None when it has no terms."""
    return match_expression(query_terms(text))


_ASCII_TOKEN = re.compile(r"[A-Za-z0-9]+")
_ASCII_PUNCTUATION = "".join(chr(c) for c in range(33, 127) if not chr(c).isalnum())


def ascii_token(term: str) -> str | None:
    """The single FTS5 token of `term` when that is certain (ASCII letters and digits, with
    only ASCII punctuation around them, as in `policy?`), else None."""
    core = term.strip(_ASCII_PUNCTUATION)
    return core.lower() if _ASCII_TOKEN.fullmatch(core) else None


def is_floor_weighted(docs_with_term: int, total_docs: int) -> bool:
    """Whether FTS5's bm25 gives a term in this many documents its floor idf (1e-6).

    FTS5 computes idf = ln((N - n + 0.5) / (n + 0.5)) and replaces any value <= 0 by 1e-6, so
    a term in at least half the documents adds almost nothing to any score.
    """
    return total_docs > 0 and 2 * docs_with_term >= total_docs


def rrf(rankings: Iterable[Sequence[int]], k: int = RRF_K) -> dict[int, float]:
    """Reciprocal rank fusion: each id scores the sum of 1 / (k + rank) over its rankings."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            scores[doc] = scores.get(doc, 0.0) + 1.0 / (k + rank)
    return scores


@dataclass(frozen=True, slots=True)
class VectorMatrix:
    """The unit-normalised vectors of an index, rows ordered by ascending row id.

    Built once per write generation and reused by every search until the next write.
    """

    generation: int
    row_ids: npt.NDArray[np.int64]
    matrix: npt.NDArray[np.float32]

    @classmethod
    def build(cls, generation: int, rows: Iterable[tuple[int, bytes]],
              dimensions: int) -> VectorMatrix:
        """From (row id, float32 blob) pairs in ascending row id order."""
        ids: list[int] = []
        blobs: list[bytes] = []
        for row_id, blob in rows:
            ids.append(row_id)
            blobs.append(blob)
        matrix = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(ids), dimensions)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        # A zero vector stays zero (similarity 0 to everything) instead of dividing by zero.
        matrix = (matrix / np.where(norms == 0, 1, norms)).astype(np.float32)
        return cls(generation, np.asarray(ids, dtype=np.int64), matrix)

    def positions(self, row_ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The matrix rows of the given sorted row ids (ids without a row are dropped)."""
        if not len(row_ids) or not len(self.row_ids):
            return np.empty(0, dtype=np.int64)
        pos = np.clip(np.searchsorted(self.row_ids, row_ids), 0, len(self.row_ids) - 1)
        return pos[self.row_ids[pos] == row_ids]

    def nearest(self, query: Sequence[float], k: int,
                allowed: npt.NDArray[np.int64] | None) -> list[int]:
        """Row ids of the `k` rows most cosine-similar to `query`, best first, among `allowed`
        matrix positions (all when None). Exact, not approximate; ties go to the lower row id."""
        q = np.asarray(query, dtype=np.float32)
        norm = float(np.linalg.norm(q))
        if norm == 0 or k <= 0:
            return []
        if not len(self.row_ids):
            return []
        # Score every row, then select: cheaper than copying the permitted rows out first.
        sims = self.matrix @ (q / norm)
        ids = self.row_ids
        if allowed is not None:
            sims, ids = sims[allowed], ids[allowed]
        if not len(ids):
            return []
        if len(ids) > k:
            top = np.argpartition(-sims, k - 1)[:k]
        else:
            top = np.arange(len(ids))
        order = top[np.lexsort((ids[top], -sims[top]))]
        return [int(i) for i in ids[order]]


@dataclass(frozen=True, slots=True)
class PrincipalIndex:
    """Row ids by principal, for security trimming in memory: `("g", group id)` and
    `("u", user id)` each map to the sorted row ids of the documents that grant it.

    Built from the `principals` table once per write generation; trimming a query then costs
    a few array unions instead of a SQL scan of every permitted row.
    """

    generation: int
    rows_by_principal: Mapping[tuple[str, str], npt.NDArray[np.int64]]

    @classmethod
    def build(cls, generation: int, rows: Iterable[tuple[str, str, int]]) -> PrincipalIndex:
        """From (kind, value, row id) triples sorted by kind, value and row id."""
        grouped: dict[tuple[str, str], list[int]] = {}
        for kind, value, row_id in rows:
            grouped.setdefault((kind, value), []).append(row_id)
        return cls(generation, {k: np.asarray(v, dtype=np.int64) for k, v in grouped.items()})

    def permitted(self, security: SecurityFilter) -> npt.NDArray[np.int64]:
        """The sorted, unique row ids of the documents `security` permits: one of the filter's
        group ids among the document's group ids, or the filter's user among its user ids."""
        keys = [("g", g) for g in security.group_ids]
        if security.user_id is not None:
            keys.append(("u", security.user_id))
        parts = [self.rows_by_principal[k] for k in keys if k in self.rows_by_principal]
        if not parts:
            return np.empty(0, dtype=np.int64)
        return np.unique(np.concatenate(parts))
