"""Costs pypdf 7.1 pays on every page of a PDF, avoided while spindex extracts one; the text
is the same. Other threads using pypdf meanwhile get the same results, and once no extraction
runs, pypdf is exactly as it was.

- Each page's text extractor builds a 256-entry cp1252 table for its placeholder font,
  decoding byte by byte (py-pdf/pypdf#3905): ~0.45 ms a page, 6-10% of extracting a typical
  page. The builder is swapped for one that builds each table once per process and hands out
  copies, so that no caller can change another's.
- Each page builds a `Font` from every font dictionary of its resources, though a document's
  pages mostly share them: 1-4% of extracting. While a thread extracts a document, a font is
  built once per dictionary of that document.
- Each text-showing operator decodes its string and sums its glyph widths one character at a
  time in Python, asking the font for the width of each distinct character again: about a
  quarter of extracting. `_text_operands` gives the same text and the same sum (added in the
  same order) from `str.translate` and a per-document table of each font's widths.
- The content stream parser reads each string literal one byte at a time: ~9% of extracting.
  `_read_string` copies the runs between parentheses and backslashes whole and decodes escapes
  as pypdf does, leaving the stream at the same position and logging the same warnings.

The last three rely on pypdf not changing a `Font` once built (in 7.1 the one change, a
default space width, is the same on every page, and it is read afresh each time) and on the
functions they stand in for being 7.1's, so they are only done on the versions they were
checked against (`_CHECKED_VERSIONS`), and only where pypdf's own function is in place.

`faster_pypdf()` holds them for one document in the calling thread; a swap stays in place
while any thread is inside it.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import reduce
from operator import add
from typing import Any

import pypdf
from pypdf import _codecs
from pypdf import _text_extraction as _extraction
from pypdf._text_extraction import _text_extractor, mult, orient
from pypdf.errors import STREAM_TRUNCATED_PREMATURELY, PdfStreamError
from pypdf.generic import _data_structures
from pypdf.generic import _utils as _strings
from pypdf.generic._font import Font

_CHECKED_VERSIONS = ("7.1.",)  # pypdf versions the font, operand and string swaps were checked against
_TABLE_BUILDER = "encoding_dict_from_named_encoding"

_TABLE_OF = getattr(_codecs, _TABLE_BUILDER, None)  # pypdf's own, left in _codecs
_FONT_OF = Font.__dict__.get("from_font_resource")
_OPERANDS_OF = getattr(_extraction, "get_text_operands", None)
_STRING_OF = getattr(_strings, "read_string_from_stream", None)

_tables: dict[str, dict[int, str]] = {}
# Of this thread's document: .fonts, id -> (font dictionary, Font); .widths, id -> (Font, its
# translation table or None, {character: width})
_local = threading.local()
_lock = threading.Lock()
_users = 0
_swapped: list[Callable[[], None]] = []  # what puts each swap back


def _copy_of_table(encoding: str) -> dict[int, str]:
    table = _tables.get(encoding)
    if table is None:
        table = _tables[encoding] = _codecs.encoding_dict_from_named_encoding(encoding)
    return dict(table)


def _font_of(cls: type[Font], pdf_font_dict: Any) -> Font:
    fonts = getattr(_local, "fonts", None)
    known = fonts.get(id(pdf_font_dict)) if fonts is not None else None
    if known is not None and known[0] is pdf_font_dict:
        return known[1]
    font: Font = _FONT_OF.__get__(None, cls)(pdf_font_dict)  # type: ignore[union-attr]
    if fonts is not None:  # None: a thread outside faster_pypdf(), which builds as pypdf does
        fonts[id(pdf_font_dict)] = (pdf_font_dict, font)
    return font


def _text_operands(
    operands: list[Any], cm_matrix: list[float], tm_matrix: list[float], font: Font, orientations: tuple[int, ...]
) -> tuple[str, bool, float]:
    """What pypdf's `get_text_operands` returns: the text of a text-showing operator's string,
    whether it came as text, and the sum of its glyph widths in reading order."""
    widths_of = getattr(_local, "widths", None)
    if widths_of is None:  # a thread outside faster_pypdf()
        return _OPERANDS_OF(operands, cm_matrix, tm_matrix, font, orientations)  # type: ignore[misc]
    if orient(mult(tm_matrix, cm_matrix)) not in orientations or not operands:
        return "", False, 0.0
    known = widths_of.get(id(font))
    if known is None or known[0] is not font:
        encoding = font.encoding
        # str.translate maps as pypdf's `encoding.get(byte, chr(byte))` does when every value is text
        plain = type(encoding) is dict and all(type(value) is str for value in encoding.values())
        known = widths_of[id(font)] = (font, encoding if plain else None, {})
    shown = operands[0]
    as_text = isinstance(shown, str)
    if as_text:
        text = chars = shown
    elif isinstance(font.encoding, str):  # a named encoding
        try:
            text = chars = shown.decode(font.encoding, "surrogatepass")
        except UnicodeDecodeError:
            text = chars = shown.decode(font.encoding, "replace")
    elif isinstance(shown, bytes) and known[1] is not None and known[1] is font.encoding:
        chars = shown.decode("latin-1")  # the bytes as characters, whose widths pypdf sums
        text = chars.translate(known[1])
    else:
        return _OPERANDS_OF(operands, cm_matrix, tm_matrix, font, orientations)  # type: ignore[misc]
    if not chars:
        return text, as_text, 0.0
    width = known[2]
    space, distinct = font.space_char, set(chars)
    for char in distinct.difference(width):
        if char != space:
            width[char] = font.get_text_width(char)
    if space in distinct:
        width[space] = font.space_width
    return text, as_text, reduce(add, map(width.__getitem__, chars), 0.0)


_STRING_STOPS = re.compile(rb"[()\\]")
_OCTAL = b"01234567"


def _read_string(stream: Any, forced_encoding: Any = None) -> Any:
    """What pypdf's `read_string_from_stream` reads, the string literal at the stream's position."""
    if type(stream) is not io.BytesIO:
        return _STRING_OF(stream, forced_encoding)  # type: ignore[misc]
    data = stream.getvalue()  # the buffer itself, not a copy
    end, at = len(data), stream.tell()
    pos = at + 1 if at < end else at  # past the opening parenthesis
    close = data.find(b")", pos)
    if close >= 0 and data.find(b"(", pos, close) < 0 and data.find(b"\\", pos, close) < 0:
        stream.seek(close + 1)
        return _strings.create_string_object(data[pos:close], forced_encoding)
    escapes = _strings.__ESCAPE_DICT__
    out = bytearray()
    depth = 1
    while True:
        stop = _STRING_STOPS.search(data, pos)
        if stop is None:
            break
        out += data[pos : stop.start()]
        byte, pos = data[stop.start()], stop.start() + 1
        if byte != 0x5C:  # a parenthesis
            depth += 1 if byte == 0x28 else -1
            if not depth:
                stream.seek(pos)
                return _strings.create_string_object(bytes(out), forced_encoding)
            out.append(byte)
            continue
        token = data[pos : pos + 1]
        if not token:
            break
        pos += 1
        if token in escapes:
            out.append(escapes[token])
        elif token in _OCTAL:
            digits = pos  # up to two more octal digits
            while digits < min(pos + 2, end) and data[digits] in _OCTAL:
                digits += 1
            value = int(data[pos - 1 : digits], 8)
            if value > 255:  # pypdf keeps the backslash and reads the digits as text
                out.append(0x5C)
                pos -= 1
            else:
                out.append(value)
                pos = digits
        elif token in b"\n\r":  # an escaped line break: nothing, and a second one with it
            if pos < end and data[pos] in b"\n\r":
                pos += 1
        else:
            _strings.logger_warning(
                "Unexpected escaped string: %(token)s", source=_strings.__name__, token=token.decode("utf-8", "ignore")
            )
            out += b"\\" + token
    stream.seek(max(at, end))
    raise PdfStreamError(STREAM_TRUNCATED_PREMATURELY)


def _swap(owner: Any, name: str, pypdfs: Any, ours: Any) -> None:
    """Put `ours` at owner.name if pypdf's own function `pypdfs` is there."""
    if pypdfs is not None and vars(owner).get(name) is pypdfs:
        setattr(owner, name, ours)
        _swapped.append(lambda: setattr(owner, name, pypdfs))


def _install() -> None:
    _swap(_text_extractor, _TABLE_BUILDER, _TABLE_OF, _copy_of_table)
    if not pypdf.__version__.startswith(_CHECKED_VERSIONS):
        return
    if isinstance(_FONT_OF, classmethod):
        _swap(Font, "from_font_resource", _FONT_OF, classmethod(_font_of))
    _swap(_text_extractor, "get_text_operands", _OPERANDS_OF, _text_operands)
    _swap(_data_structures, "read_string_from_stream", _STRING_OF, _read_string)


def _uninstall() -> None:
    while _swapped:
        _swapped.pop()()


@contextmanager
def faster_pypdf() -> Iterator[None]:
    """pypdf without those costs, for the document this thread extracts inside."""
    global _users
    with _lock:
        if not _users:
            _install()
        _users += 1
    outer = getattr(_local, "fonts", None), getattr(_local, "widths", None)
    _local.fonts, _local.widths = {}, {}
    try:
        yield
    finally:
        _local.fonts, _local.widths = outer
        with _lock:
            _users -= 1
            if not _users:
                _uninstall()
