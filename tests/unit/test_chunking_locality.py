"""An edit changes only the chunks around it, so a re-sync re-embeds a few chunks, not the file.

Invariants defended:
- changing one word in the middle of a 5,000-word document changes at most 3 chunk hashes,
  whether the document has paragraphs or is one long paragraph (where a greedy splitter
  shifts every later chunk);
- inserting a sentence changes at most a handful of chunks, all next to the edit: the chunks
  before and after that neighbourhood keep their text and hashes;
- an edit on one sizeable page never changes the chunks of other pages.
"""

from __future__ import annotations

import random

import pytest

from ingest.chunking import Chunker
from ingest.models import Chunk, Extracted, Section

COMMON = (
    "the of and to a in is that for it as was with be by on not he this are or his from at "
    "which but have an they you were their one all we can her has there been if more when will "
    "would who so no"
).split()


def _vocabulary(seed: int) -> list[str]:
    rng = random.Random(seed)
    rare = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 10))) for _ in range(4000)]
    return COMMON + rare


VOCABULARY = _vocabulary(0)
WEIGHTS = [1 / (rank + 1) for rank in range(len(VOCABULARY))]  # Zipf-like, as prose is


def _sentence(rng: random.Random) -> str:
    words = rng.choices(VOCABULARY, WEIGHTS, k=rng.randint(6, 28))
    return " ".join(words).capitalize() + rng.choice([".", ".", "?", "!"])


def _paragraphs(rng: random.Random, words: int) -> list[str]:
    paragraphs: list[str] = []
    while sum(len(p.split()) for p in paragraphs) < words:
        paragraphs.append(" ".join(_sentence(rng) for _ in range(rng.randint(1, 9))))
    return paragraphs


def _change_word(rng: random.Random, paragraphs: list[str]) -> list[str]:
    edited = list(paragraphs)
    middle = len(edited) // 2
    words = edited[middle].split(" ")
    at = len(words) // 2 if len(edited) == 1 else rng.randrange(len(words))
    words[at] = rng.choice(VOCABULARY[60:]) + "x"  # never the word it replaces
    edited[middle] = " ".join(words)
    return edited


def _changed(before: list[Chunk], after: list[Chunk]) -> int:
    return len({c.content_hash for c in after} - {c.content_hash for c in before})


def _doc(paragraphs: list[str]) -> Extracted:
    return Extracted([Section("\n\n".join(paragraphs))])


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("layout", ["paragraphs", "one paragraph"])
def test_one_changed_word_changes_at_most_three_chunks(seed: int, layout: str) -> None:
    rng = random.Random(seed)
    paragraphs = _paragraphs(rng, 5000)
    if layout == "one paragraph":
        paragraphs = [" ".join(paragraphs)]
    chunker = Chunker()
    before = chunker.chunk(_doc(paragraphs))
    after = chunker.chunk(_doc(_change_word(rng, paragraphs)))
    assert len(before) > 15
    assert 1 <= _changed(before, after) <= 3


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("layout", ["paragraphs", "one paragraph"])
def test_inserted_sentences_change_only_neighbouring_chunks(seed: int, layout: str) -> None:
    rng = random.Random(100 + seed)
    paragraphs = _paragraphs(rng, 5000)
    if layout == "one paragraph":
        paragraphs = [" ".join(paragraphs)]
    edited = list(paragraphs)
    middle = len(edited) // 2
    sentences = edited[middle].split(". ")
    sentences.insert(len(sentences) // 2, _sentence(rng) + " " + _sentence(rng)[:-1])
    edited[middle] = ". ".join(sentences)
    chunker = Chunker()
    before, after = chunker.chunk(_doc(paragraphs)), chunker.chunk(_doc(edited))

    assert _changed(before, after) <= 5
    # Everything outside the neighbourhood of the edit is untouched, in order.
    same_head = next(i for i, (a, b) in enumerate(zip(before, after)) if a.content_hash != b.content_hash)
    same_tail = next(
        i for i, (a, b) in enumerate(zip(reversed(before), reversed(after))) if a.content_hash != b.content_hash
    )
    assert len(before) - same_head - same_tail <= 5


def test_an_edit_on_one_page_leaves_other_pages_alone() -> None:
    rng = random.Random(7)
    pages = [" ".join(_sentence(rng) for _ in range(40)) for _ in range(5)]
    edited = list(pages)
    edited[1] = edited[1].replace(" ", " inserted words here ", 1)
    chunker = Chunker(chunk_tokens=256, overlap_tokens=32)
    before = chunker.chunk(Extracted([Section(t, page=p) for p, t in enumerate(pages, 1)]))
    after = chunker.chunk(Extracted([Section(t, page=p) for p, t in enumerate(edited, 1)]))
    unchanged = {(c.page_start, c.text) for c in before} & {(c.page_start, c.text) for c in after}
    for chunk in before:
        if chunk.page_start != 2:
            assert (chunk.page_start, chunk.text) in unchanged
