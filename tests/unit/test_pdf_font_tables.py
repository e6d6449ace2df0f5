"""spindex's PDF extraction avoids two per-page costs of pypdf (`ingest.extract.pypdf_speedups`):
that must change nothing but the time.

Invariants defended:
- every page's text is what unmodified pypdf gives (cleaned), whatever bytes a page shows, in
  which of several fonts (named encodings, /Differences, /Widths without a space, so that
  pypdf sets a default space width) and whether before any font is set, in pypdf's
  placeholder font;
- while spindex extracts, the placeholder table is built once per process and each font once
  per document, and pypdf is left as it was afterwards, also when threads extract at once
  and another thread uses pypdf directly meanwhile.
"""

from __future__ import annotations

import io
import threading

import pypdf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PdfReader, _codecs
from pypdf._text_extraction import _text_extractor
from pypdf.generic import _font as font_module
from pypdf.generic._font import Font

from ingest.errors import EmptyFile
from ingest.extract import pypdf_speedups
from ingest.extract._common import clean_text
from ingest.extract.pdf import extract_pdf
from sandbox.samples import render_sample, sample_names
from tests.unit.test_extract_formats import HELVETICA, make_pdf_of_streams

FONTS = {
    "/F1": HELVETICA,
    "/F2": b"<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman /Encoding << /Type /Encoding "
    b"/BaseEncoding /WinAnsiEncoding /Differences [65 /Euro /bullet 97 /eacute] >> >>",
    "/F3": b"<< /Type /Font /Subtype /TrueType /BaseFont /Arial /FirstChar 65 /LastChar 70 "
    b"/Widths [600 0 550 610 500 480] /Encoding /WinAnsiEncoding >>",
    "/F4": b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /MacRomanEncoding >>",
}
PYPDF_AS_IS = "pypdf left modified"


def _as_is() -> bool:
    return (
        _text_extractor.encoding_dict_from_named_encoding is _codecs.encoding_dict_from_named_encoding
        and Font.__dict__["from_font_resource"] is pypdf_speedups._FONT_OF
    )


def _literal(data: bytes) -> bytes:
    return data.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _stream(lines: list[tuple[str | None, bytes]]) -> bytes:
    """A page showing each line in the font named before it (None: the font so far, at
    first pypdf's placeholder)."""
    ops = [b"BT 14 TL 72 760 Td"]
    for font, line in lines:
        if font:
            ops.append(font.encode() + b" 10 Tf")
        ops.append(b"(" + _literal(line) + b") Tj T*")
    return b" ".join([*ops, b"ET"])


def _pypdf_as_is(content: bytes) -> list[str]:
    """What unmodified pypdf gives, cleaned as spindex cleans it, blank pages left out."""
    assert _as_is(), PYPDF_AS_IS
    texts = [clean_text(page.extract_text(), compatibility=True) for page in PdfReader(io.BytesIO(content)).pages]
    return [text for text in texts if text.strip()]


def _spindex(content: bytes) -> list[str]:
    try:
        return [section.text for section in extract_pdf(content).sections]
    except EmptyFile:
        return []


_LINE = st.tuples(st.sampled_from([None, *FONTS]), st.binary(max_size=24))  # cp1252's holes too
_PAGE = st.lists(_LINE, min_size=1, max_size=5).map(_stream)


@given(st.lists(_PAGE, min_size=1, max_size=5))
@settings(max_examples=200, deadline=None)
def test_every_page_reads_as_unmodified_pypdf_reads_it(streams: list[bytes]) -> None:
    content = make_pdf_of_streams(streams, fonts=FONTS)
    assert _spindex(content) == _pypdf_as_is(content)
    assert _as_is(), PYPDF_AS_IS


@pytest.mark.parametrize("name", sample_names())
def test_every_sample_of_the_sandbox_reads_as_unmodified_pypdf_reads_it(name: str) -> None:
    content = render_sample(name, f"{name}.pdf").content.read()
    assert _spindex(content) == _pypdf_as_is(content)


def test_tables_once_per_process_and_fonts_once_per_document(monkeypatch: pytest.MonkeyPatch) -> None:
    if not pypdf.__version__.startswith(pypdf_speedups._CHECKED_VERSIONS):
        pytest.skip(f"pypdf {pypdf.__version__}: the font memo is only used on the versions it was checked against")
    tables, fonts = [], []  # what pypdf's table and font builders were called for
    fill, encoding_of = _codecs.fill_from_encoding, font_module.get_encoding
    monkeypatch.setattr(_codecs, "fill_from_encoding", lambda name: tables.append(name) or fill(name))
    monkeypatch.setattr(font_module, "get_encoding", lambda font: fonts.append(font) or encoding_of(font))
    monkeypatch.setattr(pypdf_speedups, "_tables", {})  # as in a fresh process
    content = make_pdf_of_streams(
        [_stream([(None, b"page %d \x80" % i), ("/F1", b"one"), ("/F2", b"AB two")]) for i in range(30)], fonts=FONTS
    )

    texts = _spindex(content)
    assert texts == _pypdf_as_is(content) and texts[0].startswith("page 0 \u20ac")
    tables.clear()
    fonts.clear()
    texts = _spindex(content)
    assert tables == [], "a second document built the placeholder table again"
    assert len(fonts) == len(FONTS), f"{len(fonts)} fonts built for 30 pages sharing {len(FONTS)}"
    # Each extractor gets a copy of the table: one that changes its copy changes no other's.
    table = pypdf_speedups._copy_of_table("cp1252")
    table[0x80] = "changed"
    assert pypdf_speedups._copy_of_table("cp1252")[0x80] == "\u20ac"


def test_threads_extracting_at_once_leave_pypdf_as_it_was() -> None:
    documents = [
        make_pdf_of_streams(
            [
                _stream([(None, b"doc %d page %d \x93q\x94" % (d, p)), (f"/F{1 + (p + d) % 4}", b"ABC \x8a")])
                for p in range(6)
            ],
            fonts=FONTS,
        )
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
                    pages = PdfReader(io.BytesIO(content)).pages
                    got = [clean_text(page.extract_text(), compatibility=True) for page in pages]
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
    assert _as_is(), PYPDF_AS_IS
    assert pypdf_speedups._users == 0
