"""spindex's PDF extraction swaps a slow table builder of pypdf for a cached one (see
`ingest.extract.pdf`); that must change nothing but the time.

Invariants defended:
- every page's text is what unmodified pypdf gives (cleaned), whatever bytes a page shows and
  whether it shows them in its font or, before any font is set, in pypdf's placeholder font,
  the one whose table is cached;
- the swap holds while spindex extracts (the table is built at most once however many pages),
  and pypdf is left as it was afterwards, also when threads extract at once and another
  thread uses pypdf directly meanwhile.
"""

from __future__ import annotations

import io
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PdfReader, _codecs
from pypdf._text_extraction import _text_extractor

from ingest.errors import EmptyFile
from ingest.extract import pdf as spindex_pdf
from ingest.extract._common import clean_text
from tests.unit.test_extract_formats import make_pdf_of_streams

BUILDER = "encoding_dict_from_named_encoding"


def _bytes_literal(data: bytes) -> bytes:
    return data.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _stream(lines: list[bytes], font_first: bool, font_after_first: bool) -> bytes:
    """A page showing `lines`: in /F1 from the start, or in the placeholder font until a
    `Tf` after the first line (or throughout)."""
    ops = [b"BT", b"/F1 11 Tf" if font_first else b"", b"14 TL 72 760 Td"]
    for i, line in enumerate(lines):
        if i == 1 and font_after_first:
            ops.append(b"/F1 9 Tf")
        ops.append(b"(" + _bytes_literal(line) + b") Tj T*")
    return b" ".join([*ops, b"ET"])


def _pypdf_as_is(content: bytes) -> list[str]:
    """What unmodified pypdf gives, cleaned as spindex cleans it, blank pages left out."""
    assert getattr(_text_extractor, BUILDER) is getattr(_codecs, BUILDER), "pypdf left modified"
    texts = [clean_text(page.extract_text(), compatibility=True) for page in PdfReader(io.BytesIO(content)).pages]
    return [text for text in texts if text.strip()]


def _spindex(content: bytes) -> list[str]:
    try:
        return [section.text for section in spindex_pdf.extract_pdf(content).sections]
    except EmptyFile:
        return []


_LINE = st.binary(min_size=0, max_size=24)  # any byte: cp1252's holes (0x81, 0x8d, ...) too
_PAGE = st.tuples(st.lists(_LINE, min_size=1, max_size=4), st.booleans(), st.booleans())


@given(st.lists(_PAGE, min_size=1, max_size=5))
@settings(max_examples=150, deadline=None)
def test_every_page_reads_as_unmodified_pypdf_reads_it(pages: list[tuple[list[bytes], bool, bool]]) -> None:
    content = make_pdf_of_streams([_stream(*page) for page in pages])
    assert _spindex(content) == _pypdf_as_is(content)
    assert getattr(_text_extractor, BUILDER) is getattr(_codecs, BUILDER)


def test_the_placeholder_font_table_is_built_once_however_many_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    built = []
    fill = _codecs.fill_from_encoding
    monkeypatch.setattr(_codecs, "fill_from_encoding", lambda name: built.append(name) or fill(name))
    monkeypatch.setattr(spindex_pdf, "_tables", {})  # as in a fresh process
    streams = [_stream([b"page %d \x80" % i, b"in the font"], False, True) for i in range(30)]
    content = make_pdf_of_streams(streams)

    texts = _spindex(content)
    assert len(built) == 1, f"the table was built {len(built)} times for 30 pages"
    assert texts == _pypdf_as_is(content) and texts[0].startswith("page 0 \u20ac")
    built.clear()
    _spindex(content)
    assert built == [], "a second document built the table again"
    # Each extractor gets a copy: one that changes its table changes no other's.
    table = spindex_pdf._copy_of_table("cp1252")
    table[0x80] = "changed"
    assert spindex_pdf._copy_of_table("cp1252")[0x80] == "\u20ac"


def test_threads_extracting_at_once_leave_pypdf_as_it_was() -> None:
    documents = [
        make_pdf_of_streams([_stream([b"doc %d page %d \x93quoted\x94" % (d, p)], p % 2 == 0, True) for p in range(6)])
        for d in range(4)
    ]
    expected = [_pypdf_as_is(content) for content in documents]
    start = threading.Barrier(len(documents) + 1)
    results: dict[int, list[list[str]]] = {}
    errors: list[BaseException] = []

    def extract(d: int) -> None:
        try:
            start.wait()
            results[d] = [_spindex(documents[d]) for _ in range(5)]
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    def plain_pypdf() -> None:  # another user of pypdf in the process, meanwhile
        try:
            start.wait()
            for _ in range(5):
                for content, texts in zip(documents, expected):
                    got = [clean_text(p.extract_text(), compatibility=True) for p in PdfReader(io.BytesIO(content)).pages]
                    assert [t for t in got if t.strip()] == texts
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=extract, args=(d,)) for d in range(len(documents))]
    threads.append(threading.Thread(target=plain_pypdf))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert all(results[d] == [expected[d]] * 5 for d in range(len(documents)))
    assert getattr(_text_extractor, BUILDER) is getattr(_codecs, BUILDER), "pypdf left modified"
    assert spindex_pdf._swap_users == 0
