"""Two costs pypdf 7.1 pays on every page of a PDF, avoided while spindex extracts one; the
text is the same. Other threads using pypdf meanwhile get the same results (the cached table,
fonts built as pypdf builds them), and once no extraction runs, pypdf is exactly as it was.

- Each page's text extractor builds a 256-entry cp1252 table for its placeholder font,
  decoding byte by byte (py-pdf/pypdf#3905): ~0.45 ms a page, 6-10% of extracting a typical
  page. The builder is swapped for one that builds each table once per process and hands out
  copies, so that no caller can change another's.
- Each page builds a `Font` from every font dictionary of its resources, though a document's
  pages mostly share them: 1-4% of extracting. While a thread extracts a document, a font is
  built once per dictionary of that document. This relies on pypdf not changing a `Font` once
  built (in 7.1 the one change, a default space width, is the same on every page), so it is
  only done on the versions it was checked against (`_FONT_MEMO_VERSIONS`).

`faster_pypdf()` holds both for one document in the calling thread; a swap stays in place
while any thread is inside it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pypdf
from pypdf import _codecs
from pypdf._text_extraction import _text_extractor
from pypdf.generic._font import Font

_FONT_MEMO_VERSIONS = ("7.1.",)  # pypdf versions whose text extraction never changes a Font
_TABLE_BUILDER = "encoding_dict_from_named_encoding"

_TABLE_OF = getattr(_codecs, _TABLE_BUILDER, None)  # pypdf's own, left in _codecs
_FONT_OF = Font.__dict__.get("from_font_resource")

_tables: dict[str, dict[int, str]] = {}
_local = threading.local()  # .fonts: id -> (font dictionary, Font) of this thread's document
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


def _install() -> None:
    if _TABLE_OF is not None and getattr(_text_extractor, _TABLE_BUILDER, None) is _TABLE_OF:
        setattr(_text_extractor, _TABLE_BUILDER, _copy_of_table)
        _swapped.append(lambda table_of=_TABLE_OF: setattr(_text_extractor, _TABLE_BUILDER, table_of))
    if (
        pypdf.__version__.startswith(_FONT_MEMO_VERSIONS)
        and isinstance(_FONT_OF, classmethod)
        and Font.__dict__.get("from_font_resource") is _FONT_OF
    ):
        Font.from_font_resource = classmethod(_font_of)  # type: ignore[method-assign,assignment]
        _swapped.append(lambda font_of=_FONT_OF: setattr(Font, "from_font_resource", font_of))


def _uninstall() -> None:
    while _swapped:
        _swapped.pop()()


@contextmanager
def faster_pypdf() -> Iterator[None]:
    """pypdf without the two costs, for the document this thread extracts inside."""
    global _users
    with _lock:
        if not _users:
            _install()
        _users += 1
    outer, _local.fonts = getattr(_local, "fonts", None), {}
    try:
        yield
    finally:
        _local.fonts = outer
        with _lock:
            _users -= 1
            if not _users:
                _uninstall()
