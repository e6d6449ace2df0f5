"""Chunks are token-bounded, cover the text in order, carry truthful page ranges, and are stable.

Invariants defended (property-based where the claim is general):
- every chunk is non-empty and has at most `chunk_tokens` tokens; `token_count` is exact;
- chunk numbers run 0..n-1, and the chunks, laid back over the document, cover all of its
  non-blank text in order with no gaps (overlaps allowed);
- the same document always yields the same chunks (in this process and a fresh Chunker);
- a chunk's page_start/page_end are exactly the first and last page its words come from;
  sizeable pages are never merged, short ones may be;
- bad settings fail at construction with a clear ValueError; empty text gives [].
"""

from __future__ import annotations

import pickle
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.chunking import Chunker
from ingest.tokens import count_tokens
from ingest.models import Extracted, Section, text_hash

_WS = re.compile(r"\s+")

words = st.text(alphabet="abcdefghij.,!?-'()0123456789éß中", min_size=1, max_size=12)
separators = st.sampled_from([" ", " ", " ", "\n", "\n\n", ". ", "\t", "  \n "])
texts = st.lists(st.tuples(words, separators), max_size=400).map(lambda ps: "".join(w + s for w, s in ps))
sections = st.lists(
    st.tuples(texts, st.one_of(st.none(), st.integers(1, 500))).map(lambda t: Section(t[0], t[1])),
    max_size=6,
)
sizes = st.sampled_from([(16, 0), (16, 8), (40, 10), (64, 16), (200, 30), (512, 64)])


def _compact(text: str) -> str:
    return _WS.sub("", text)


def _covers_in_order(document: str, pieces: list[str]) -> bool:
    """True if `pieces` can be laid over `document` in order, each starting after the previous
    start and no later than its end, the first at 0 and the last ending at the end."""
    if not document:
        return not pieces
    positions = {0}
    for i, piece in enumerate(pieces):
        placed = set()
        for at in positions:
            if document.startswith(piece, at):
                placed.add(at)
        if not placed:
            return False
        if i == len(pieces) - 1:
            return any(at + len(piece) == len(document) for at in placed)
        positions = {nxt for at in placed for nxt in range(at + 1, at + len(piece) + 1)}
    return False


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sections=sections, size=sizes)
def test_chunks_are_bounded_exact_numbered_and_cover_the_text_in_order(
    sections: list[Section], size: tuple[int, int]
) -> None:
    chunker = Chunker(chunk_tokens=size[0], overlap_tokens=size[1])
    doc = Extracted(sections)
    chunks = chunker.chunk(doc)

    assert [c.chunk_no for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.text and chunk.text == chunk.text.strip()
        assert chunk.token_count == count_tokens(chunk.text) <= size[0]
        assert chunk.content_hash == text_hash(chunk.text)
    assert _covers_in_order(_compact(doc.text), [_compact(c.text) for c in chunks])
    assert Chunker(chunk_tokens=size[0], overlap_tokens=size[1]).chunk(doc) == chunks


@settings(max_examples=80, deadline=None)
@given(page_words=st.lists(st.integers(0, 400), min_size=1, max_size=12), size=sizes)
def test_page_ranges_name_exactly_the_pages_a_chunk_comes_from(
    page_words: list[int], size: tuple[int, int]
) -> None:
    # Page p is written only with letter number p, so every character of a chunk, even of a
    # word cut in two, tells which page it came from.
    letters = "abcdefghijkl"
    pages = [
        Section(" ".join(letters[p - 1] * (1 + i % 7) for i in range(n)), page=p)
        for p, n in enumerate(page_words, 1)
    ]
    chunks = Chunker(chunk_tokens=size[0], overlap_tokens=size[1]).chunk(Extracted(pages))
    for chunk in chunks:
        found = {letters.index(ch) + 1 for ch in chunk.text if not ch.isspace()}
        assert (chunk.page_start, chunk.page_end) == (min(found), max(found))


def test_sizeable_pages_are_never_merged_but_short_ones_are() -> None:
    long_pages = [Section(" ".join(f"page{p} sentence {i}." for i in range(60)), page=p) for p in (1, 2, 3)]
    for chunk in Chunker(chunk_tokens=256, overlap_tokens=32).chunk(Extracted(long_pages)):
        assert chunk.page_start == chunk.page_end
    slides = [Section(f"Slide {p}: one short line about topic {p}.", page=p) for p in range(1, 31)]
    merged = Chunker(chunk_tokens=256, overlap_tokens=32).chunk(Extracted(slides))
    assert len(merged) < 10
    assert merged[0].page_start == 1 and merged[-1].page_end == 30
    assert all(a.page_end is not None and b.page_start == a.page_end + 1 for a, b in zip(merged, merged[1:]))


def test_sections_without_pages_give_chunks_without_pages() -> None:
    chunks = Chunker(chunk_tokens=32, overlap_tokens=4).chunk(Extracted([Section("word " * 300)]))
    assert len(chunks) > 5 and all(c.page_start is None and c.page_end is None for c in chunks)


def test_special_token_markers_are_plain_text() -> None:
    chunks = Chunker(chunk_tokens=16, overlap_tokens=0).chunk(Extracted([Section("<|endoftext|> " * 40)]))
    assert chunks and "<|endoftext|>" in chunks[0].text


@pytest.mark.parametrize(
    "doc", [Extracted([]), Extracted([Section("")]), Extracted([Section(" \n\t "), Section("\f", page=1)])]
)
def test_no_text_gives_no_chunks(doc: Extracted) -> None:
    assert Chunker().chunk(doc) == []


@pytest.mark.parametrize(
    ("chunk_tokens", "overlap_tokens", "message"),
    [
        (15, 0, "between 16 and 8192"),
        (8193, 0, "between 16 and 8192"),
        (100, 100, "smaller than chunk_tokens"),
        (100, -1, ">= 0"),
    ],
)
def test_bad_settings_are_refused(chunk_tokens: int, overlap_tokens: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Chunker(chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens)


def test_chunker_pickles_for_worker_processes() -> None:
    chunker = Chunker(chunk_tokens=64, overlap_tokens=8)
    doc = Extracted([Section("A sentence that repeats. " * 50)])
    assert pickle.loads(pickle.dumps(chunker)).chunk(doc) == chunker.chunk(doc)


def test_a_piece_the_splitter_leaves_too_long_is_cut_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # Token counts do not always add up across a join; whatever the splitter hands back, no
    # chunk may exceed the limit. Simulate the worst case: a splitter that does not split.
    monkeypatch.setattr(Chunker, "_split_region", lambda self, region, tokens: [region.strip()])
    doc = Extracted([Section("alpha beta gamma delta " * 200, page=3)])
    chunks = Chunker(chunk_tokens=40, overlap_tokens=0).chunk(doc)
    assert all(c.token_count == count_tokens(c.text) <= 40 for c in chunks)
    assert all(c.page_start == c.page_end == 3 for c in chunks)
    assert _covers_in_order(_compact(doc.text), [_compact(c.text) for c in chunks])
