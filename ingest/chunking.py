"""Extracted text -> chunks: token-sized, deterministic, and local to edits.

Sizes are counted in tokens of a tiktoken encoding (the embedding model's own, so that a chunk
never exceeds the model's per-input limit). The splitting itself is langchain-text-splitters'
`RecursiveCharacterTextSplitter.from_tiktoken_encoder`, which prefers page, paragraph, line and
sentence breaks and adds the configured overlap. The document is encoded once, and chunk token
counts are derived from that encoding, exactly (`Tokens`).

A plain greedy splitter over a whole document has one flaw for incremental indexing: every chunk
boundary depends on all the text before it, so inserting a word on page 2 can shift every chunk
after it and force the whole document to be re-embedded. So the document is first cut into
*regions* at content-defined points, each chosen from the text around it only (a local minimum
of a hash of adjacent tokens, snapped forward to a page, paragraph or sentence break), small
neighbouring regions are paired up by an equally local rule, and the splitter runs inside each
region. An edit then changes the chunks around it (typically one, rarely more than three),
never the rest of the document. The price is fill: chunks average about two thirds of
`chunk_tokens` rather than nearly all of it.

Pages: each section of an `Extracted` keeps its page number; a chunk's `page_start`/`page_end`
are the first and last page its text comes from. Chunks do not cross the boundary between two
sizeable pages; short pages (title pages, slides) are grouped with their neighbours.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ingest.models import Chunk, Extracted, text_hash
from ingest.tokens import (
    DEFAULT_ENCODING,
    SECTION_BREAK,
    Tokens,
    check_encoding,
    get_encoding,
    strip_range,
    token_byte_lengths,
)

if TYPE_CHECKING:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

MIN_CHUNK_TOKENS = 16
MAX_CHUNK_TOKENS = 8192  # per-input limit of text-embedding-3-* (platform-facts §13)

_SEPARATORS = [
    re.escape(SECTION_BREAK),
    r"\n[ \t]*\n",
    r"\n",
    r"(?<=[.!?;:\u2026\u3002\uff01\uff1f])\s+",
    r" ",
    "",
]
_GRAM = 8  # tokens hashed together to pick region cuts
# splitmix64's constants, made numpy scalars once (making one costs more than the arithmetic)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX = tuple(np.uint64(k) for k in (30, 0xBF58476D1CE4E5B9, 27, 0x94D049BB133111EB, 31))
# Boundary tiers a region cut snaps to, best first: section, paragraph, line or sentence, word.
_TIER_PATTERNS = [
    re.compile(r"\f\s*"),
    re.compile(r"\n[ \t]*\n\s*"),
    re.compile(r"\n\s*|[.!?;:\u2026\u3002\uff01\uff1f][\"'\u201d\u2019)\]]*\s+"),
    re.compile(r"\s+"),
]


def warm_up(encoding: str = DEFAULT_ENCODING) -> None:
    """Build what a first document would wait for (~0.7 s): the encoding, its token table and the
    splitter's modules. The extraction workers' fork server calls it once for all workers."""
    get_encoding(encoding)
    token_byte_lengths(encoding)
    import langchain_text_splitters  # noqa: F401


class Chunker:
    """Cuts an `Extracted` into chunks of at most `chunk_tokens` tokens.

    Promises: the same input always yields the same chunks (no randomness, no global state);
    chunk numbers run 0..n-1 in reading order; every chunk is non-empty, has at most
    `chunk_tokens` tokens (`token_count` is exact), and its page range names only pages its
    text comes from; together the chunks cover all of the document's non-blank text, in order.
    Consecutive chunks overlap by up to `overlap_tokens` inside a region; region cuts fall at
    page, paragraph or sentence breaks, where no overlap is added.
    """

    def __init__(
        self,
        chunk_tokens: int = 512,
        overlap_tokens: int = 64,
        encoding: str = DEFAULT_ENCODING,
    ) -> None:
        if not MIN_CHUNK_TOKENS <= chunk_tokens <= MAX_CHUNK_TOKENS:
            raise ValueError(
                f"chunk_tokens must be between {MIN_CHUNK_TOKENS} and {MAX_CHUNK_TOKENS} "
                f"(the embedding model's per-input limit), got {chunk_tokens}"
            )
        if not 0 <= overlap_tokens < chunk_tokens:
            raise ValueError(
                f"overlap_tokens must be >= 0 and smaller than chunk_tokens ({chunk_tokens}), "
                f"got {overlap_tokens}"
            )
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = overlap_tokens
        self.encoding = encoding
        check_encoding(encoding)  # fail now, not on the first document, if the name is unknown
        # Region tuning, in tokens (measured on prose: best fill for ~1 changed chunk per
        # edited word). Cuts are at least `_window` apart, snap at most `_snap` tokens forward
        # to a better break, and pairs of regions are merged up to `_merge_levels` times;
        # pages of `_page_tokens` or more never share a chunk with another such page.
        self._window = max(3, chunk_tokens // 5)
        self._snap = max(2, chunk_tokens // 8)
        self._merge_levels = 3
        self._page_tokens = chunk_tokens // 2

    def chunk(self, doc: Extracted) -> list[Chunk]:
        """The chunks of `doc` in reading order; [] when it has no non-blank text."""
        text, spans = _join_sections(doc)
        if not text.strip():
            return []
        tokens = Tokens(self.encoding, text)
        placed: list[tuple[int, int]] = []  # each piece as a (start, end) range of `text`
        for start, end, size in self._regions(tokens, spans):
            if size > self.chunk_tokens - 16:  # the estimate may be a few tokens off
                size = tokens.count(*strip_range(text, start, end))
            pieces = self._split_region(text[start:end], size)
            placed.extend((start + a, start + b) for a, b in _place(text[start:end], pieces))
        span_ends = [span.end for span in spans]
        chunks: list[Chunk] = []
        for start, end in placed:
            body, count = tokens.chunk_text(start, end)
            fits = count <= self.chunk_tokens
            parts = [(start, end, body, count)] if fits else self._fit(tokens, start, end)
            for part_start, part_end, part, part_count in parts:
                if not part:
                    continue
                page_start, page_end = _page_range(spans, span_ends, part_start, part_end)
                chunks.append(
                    Chunk(
                        chunk_no=len(chunks),
                        text=part,
                        content_hash=text_hash(part),
                        token_count=part_count,
                        page_start=page_start,
                        page_end=page_end,
                    )
                )
        return chunks

    # --- regions -------------------------------------------------------------------------

    def _regions(self, encoded: Tokens, spans: Sequence[_Span]) -> list[tuple[int, int, int]]:
        """Content-defined (start, end, about how many tokens) character ranges tiling `text`.

        A token is a cut candidate when the hash of the tokens ending at it is the smallest
        within `_window` tokens on either side ("local minimum" chunking): each cut then
        depends only on the text around it, cuts are rarely closer than `_window` tokens
        (only a repeated phrase ties) and come about every `2 * _window` tokens. Breaks
        between two pages of at least `_page_tokens` are always cuts, and nothing is cut
        within `_window` tokens of them or of either end. Then `_merge_pairs` joins small
        neighbours.
        """
        text, tokens = encoded.text, encoded.ids
        n = len(tokens)
        if n <= self.chunk_tokens:
            return [(0, len(text), n)]
        starts = encoded.starts
        w = self._window
        # The token each section starts and ends in, looked up at once.
        bounds = np.searchsorted(starts, [pos for span in spans for pos in (span.start, span.end)], side="right") - 1
        first_tokens, span_tokens = bounds[0::2], (bounds[1::2] - bounds[0::2]).tolist()
        hard_at = [
            i + 1 for i in range(len(spans) - 1) if min(span_tokens[i], span_tokens[i + 1]) >= self._page_tokens
        ]
        hard = [spans[i].start for i in hard_at]
        h = _gram_hashes(tokens)
        h[first_tokens[hard_at]] = 0  # outranks all near it
        padded = np.concatenate([np.zeros(w, np.uint64), h, np.zeros(w, np.uint64)])
        # A candidate is the least of the `w` tokens on either side and itself; ties (a repeated
        # phrase) all count, so a repeat never hides the cuts after it.
        window_min = _sliding_min(padded, 2 * w + 1)  # window_min[i] = min(h[i - w : i + w + 1])
        candidates = np.nonzero((h == window_min) & (h > 0))[0]

        cuts = dict.fromkeys(hard, 0)  # cut position -> hash; 0: a hard cut, never merged over
        for j in candidates.tolist():
            limit = int(starts[j + self._snap]) if j + self._snap < n else len(text)
            pos = _snap(text, int(starts[j]), limit)
            if 0 < pos < len(text):
                cuts[pos] = min(cuts.get(pos, 1 << 40), int(h[j]))
        edges = [0, *sorted(cuts), len(text)]
        at = np.searchsorted(starts, edges, side="left").tolist()
        sizes = [at[i + 1] - at[i] for i in range(len(edges) - 1)]
        hashes = [cuts[pos] for pos in edges[1:-1]]
        for _ in range(self._merge_levels):
            if not self._merge_pairs(edges, sizes, hashes):
                break
        return [(edges[i], edges[i + 1], sizes[i]) for i in range(len(sizes))]

    def _merge_pairs(self, edges: list[int], sizes: list[int], hashes: list[int]) -> bool:
        """Drop cuts between two regions that fit in one chunk together; True if any went.

        A cut goes when its two regions fit together (with room for the token drift at
        joins) and its hash beats that of each neighbouring cut that could also go: a local
        rule, so an edit can only change merges next to it, and no two adjacent cuts go.
        """
        room = self.chunk_tokens - max(2, self.chunk_tokens // 32)
        fits = [sizes[i] + sizes[i + 1] <= room and hashes[i] > 0 for i in range(len(hashes))]
        drop = [
            fits[i]
            and not (i > 0 and fits[i - 1] and hashes[i - 1] >= hashes[i])
            and not (i + 1 < len(fits) and fits[i + 1] and hashes[i + 1] > hashes[i])
            for i in range(len(hashes))
        ]
        if not any(drop):
            return False
        for i in reversed(range(len(hashes))):
            if drop[i]:
                del edges[i + 1], hashes[i]
                sizes[i : i + 2] = [sizes[i] + sizes[i + 1]]
        return True

    def _split_region(self, region: str, region_tokens: int) -> list[str]:
        """Stripped, in-order pieces of one region, each meant to fit in a chunk."""
        if region_tokens <= self.chunk_tokens:
            stripped = region.strip()
            return [stripped] if stripped else []
        # Aim for pieces of even size rather than full ones and a scrap at the end.
        step = self.chunk_tokens - self.overlap_tokens
        pieces = -(-(region_tokens - self.overlap_tokens) // step)
        target = -(-(region_tokens + (pieces - 1) * self.overlap_tokens) // pieces)
        size = min(self.chunk_tokens, target + target // 8)
        splitter = _splitter(self.encoding, size, min(self.overlap_tokens, size - 1))
        return splitter.split_text(region)

    def _fit(self, tokens: Tokens, start: int, end: int) -> list[tuple[int, int, str, int]]:
        """text[start:end] as (start, end, chunk text, tokens) parts of at most `chunk_tokens`.

        The splitter sums the token counts of its pieces, and tokens do not always add up
        exactly across a join; this halves the rare piece that comes out over the limit.
        """
        text = tokens.text
        body, count = tokens.chunk_text(start, end)
        if count <= self.chunk_tokens or end - start < 2:
            return [(start, end, body, count)]
        middle = (start + end) // 2
        cut = text.rfind(" ", start + 1, middle)
        if cut < 0:
            cut = text.find(" ", middle, end - 1)
        if cut < 0:
            cut = middle
        return [*self._fit(tokens, start, cut), *self._fit(tokens, cut, end)]


@functools.lru_cache(maxsize=64)
def _splitter(encoding: str, chunk_size: int, overlap: int) -> RecursiveCharacterTextSplitter:
    """A token-sized langchain splitter; cached, as building one looks up the encoding."""
    # Imported here: it takes ~0.4 s, and most documents' regions never need it.
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter.from_tiktoken_encoder(
        encoding_name=encoding,
        chunk_size=chunk_size,
        chunk_overlap=overlap,
        disallowed_special=(),  # "<|endoftext|>" in a document is text, not an error
        separators=_SEPARATORS,
        is_separator_regex=True,
    )


def _gram_hashes(tokens: np.ndarray) -> np.ndarray:
    """For each token, a 32-bit hash (>= 1) of it and the `_GRAM - 1` tokens before it.

    Several tokens, not two, so that common phrases ("of the") repeat far less often: equal
    hashes near each other would otherwise all be cut candidates.
    """
    x = _mix(tokens.astype(np.uint64))
    acc = x.copy()
    for back in range(1, _GRAM):  # acc = mix(acc * K ^ x shifted back), in place
        acc *= _GOLDEN
        acc[back:] ^= x[:-back]
        _mix(acc)
    acc >>= np.uint64(32)
    acc += np.uint64(1)
    return acc


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place: fixed constants, stable across processes and machines."""
    shift1, factor1, shift2, factor2, shift3 = _MIX
    x ^= x >> shift1
    x *= factor1
    x ^= x >> shift2
    x *= factor2
    x ^= x >> shift3
    return x


def _sliding_min(values: np.ndarray, k: int) -> np.ndarray:
    """m[i] = min(values[i:i + k]) for every full window (van Herk / Gil-Werman, O(n))."""
    n = len(values)
    blocks = -(-n // k)
    padded = np.full(blocks * k, np.iinfo(values.dtype).max, dtype=values.dtype)
    padded[:n] = values
    grid = padded.reshape(blocks, k)
    prefix = np.minimum.accumulate(grid, axis=1).ravel()
    suffix = np.minimum.accumulate(grid[:, ::-1], axis=1)[:, ::-1].ravel()
    return np.minimum(suffix[: n - k + 1], prefix[k - 1 : n])


@dataclass(frozen=True, slots=True)
class _Span:
    """Where one non-blank section lies in the joined text."""

    start: int
    end: int
    page: int | None


def _join_sections(doc: Extracted) -> tuple[str, list[_Span]]:
    """The sections' text joined by section breaks, with each section's span and page."""
    parts: list[str] = []
    spans: list[_Span] = []
    pos = 0
    for section in doc.sections:
        body = _normalise(section.text)
        if not body.strip():
            continue
        if parts:
            parts.append(SECTION_BREAK)
            pos += len(SECTION_BREAK)
        parts.append(body)
        spans.append(_Span(pos, pos + len(body), section.page))
        pos += len(body)
    return "".join(parts), spans


def _normalise(text: str) -> str:
    """Line endings as `\\n`, no form feeds (they mark sections here), no lone surrogates."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace(SECTION_BREAK, "\n")
    return text if text.isascii() else text.encode("utf-8", "replace").decode("utf-8")


def _snap(text: str, pos: int, limit: int) -> int:
    """Just after the first break of the best tier in text[pos:limit], or `pos` if none."""
    for pattern in _TIER_PATTERNS:
        match = pattern.search(text, pos, limit)
        if match:
            return match.end()
    return pos


def _place(region: str, pieces: Sequence[str]) -> list[tuple[int, int]]:
    """Where the splitter's pieces lie in `region`, dropping any piece that another covers.

    Pieces are stripped substrings, in order, each starting at or after the previous one's
    start and no later than just past its end. After stripping, overlapping pieces can come
    out nested (same start) or even twice; a nested piece adds nothing and is dropped.
    """
    spans: list[tuple[int, int]] = []
    cursor = 0
    for piece in pieces:
        at = region.find(piece, cursor)
        if at < 0:
            raise AssertionError("chunk text not found in its region")  # a splitter bug
        if spans and at == spans[-1][0] and at + len(piece) <= spans[-1][1]:
            # Inside the previous piece: a repeat of it, unless the same text recurs where
            # the next piece may start (repetitive text), in which case it is that one.
            previous_end = spans[-1][1]
            later = region.find(piece, at + 1)
            if later < 0 or (later > previous_end and region[previous_end:later].strip()):
                continue
            at = later
        while spans and spans[-1][0] >= at and spans[-1][1] <= at + len(piece):
            spans.pop()  # the previous piece is inside this one
        spans.append((at, at + len(piece)))
        cursor = at
    return spans


def _page_range(
    spans: Sequence[_Span], span_ends: Sequence[int], start: int, end: int
) -> tuple[int | None, int | None]:
    """The first and last page among the sections overlapping [start, end)."""
    i = bisect.bisect_right(span_ends, start)
    pages: list[int] = []
    while i < len(spans) and spans[i].start < end:
        page = spans[i].page
        if page is not None:
            pages.append(page)
        i += 1
    if not pages:
        return None, None
    return min(pages), max(pages)
