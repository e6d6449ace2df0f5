"""Token counts derived from a document's one encoding are exactly those of encoding again.

Invariants defended (property-based):
- a text's tokens are those of its two sides of any cut (`_PIECE_CUT`), encoded apart, which
  is what the derivation rests on;
- for any range of a text, `Tokens.count` equals the token count of the range's text
  encoded on its own, with or without a trailing blank line;
- for any range, `Tokens.chunk_text` gives the stored chunk text and its exact token count,
  section breaks included;
- the default encoding pre-tokenises with the pattern the derivation was proved for, so
  counts are derived, not silently re-encoded (a tiktoken upgrade that changes it shows here).
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.tokens import (
    _PIECE_CUT,
    DEFAULT_ENCODING,
    Tokens,
    clean_chunk_text,
    count_tokens,
    get_encoding,
    strip_range,
)

# Characters the pre-tokeniser treats specially: line breaks, spaces and tabs, other Unicode
# whitespace (some of which only Python calls whitespace), contractions, digits, punctuation
# (which joins a following line break), section breaks, letters that BPE merges across, and
# multi-byte text.
_PARTS = [
    " ", " ", "  ", "\t", "\n", "\n\n", "\r", " \n", "\f", " \f ", "\u00a0", "\u3000", "\u2028",
    "\x1c", "\x85", "\x0b", "'s", "'ll", "'RE", "'", "123", "4567", ".", "...", "?!", "(", "\"",
    "-", "a", "the", "ing", " Hello", "world", "é", "ß", "ﬁ", "中文", "。", "😀", "\u0301",
    "<|endoftext|>",
]  # fmt: skip


def _text(rng: random.Random) -> str:
    """A few hundred parts drawn from a few kinds, so that texts without spaces, or full of
    rare characters, are common."""
    parts = rng.sample(_PARTS, rng.randint(2, 8))
    return "".join(rng.choice(parts) for _ in range(rng.randint(1, 400)))


def _position(rng: random.Random, text: str, low: int) -> int:
    """Anywhere from `low` on, half the time where whitespace starts or stops (where the rules
    for a range's edges apply)."""
    edges = [i for i in range(max(low, 1), len(text)) if text[i - 1].isspace() != text[i].isspace()]
    if edges and rng.random() < 0.5:
        return rng.choice(edges)
    return rng.randint(low, len(text))


@settings(max_examples=200, deadline=None)
@given(rng=st.randoms(use_true_random=False))
def test_a_text_encodes_as_its_two_sides_of_any_cut(rng: random.Random) -> None:
    encode = get_encoding().encode_ordinary
    text = _text(rng)
    whole = encode(text)
    for cut in _PIECE_CUT.finditer(text):
        assert encode(text[: cut.end()]) + encode(text[cut.end() :]) == whole


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rng=st.randoms(use_true_random=False))
def test_derived_counts_equal_encoding_the_range_on_its_own(rng: random.Random) -> None:
    text = _text(rng)
    if not text.strip():
        return
    tokens = Tokens(DEFAULT_ENCODING, text)
    assert tokens.ids.tolist() == get_encoding().encode_ordinary(text)
    for _ in range(20):
        start = _position(rng, text, 0)
        end = _position(rng, text, start)
        body, count = tokens.chunk_text(start, end)
        assert body == clean_chunk_text(text[start:end])
        assert count == count_tokens(body)
        stripped_start, stripped_end = strip_range(text, start, end)
        assert text[stripped_start:stripped_end] == text[start:end].strip()
        for suffix in ("", "\n\n"):
            piece = text[stripped_start:stripped_end] + suffix
            assert tokens.count(stripped_start, stripped_end, suffix) == count_tokens(piece)


def test_the_default_encoding_has_the_pattern_counts_are_derived_for() -> None:
    assert Tokens(DEFAULT_ENCODING, "x")._exact_cuts, (
        "tiktoken's cl100k_base pattern changed: chunk token counts are now re-encoded "
        "(still exact, but slower); re-check _PIECE_CUT against the new pattern"
    )
