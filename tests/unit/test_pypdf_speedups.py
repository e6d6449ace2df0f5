"""spindex's PDF extraction avoids per-page costs of pypdf (`ingest.extract.pypdf_speedups`):
that must change nothing but the time.

Invariants defended:
- every page's text is what unmodified pypdf gives (cleaned), whatever a page shows (any
  bytes; escapes, octal codes, nested parentheses and hex strings; kerned TJ arrays, moves
  along a line, character spacing and scaling, so that pypdf's spacing decisions turn on the
  glyph widths), in which of several fonts (named encodings, /Differences, /Widths without a
  space, so that pypdf sets a default space width, a ToUnicode CMap, two-byte CID fonts with
  and without one) and whether before any font is set, in pypdf's placeholder font;
- the text operands and string literals come out exactly as pypdf's own functions give them,
  down to the stream position, the warnings and the float sum of the widths;
- while spindex extracts, the placeholder table is built once per process and each font once
  per document, and pypdf is left as it was afterwards, also when threads extract at once
  and another thread uses pypdf directly meanwhile; on pypdf versions the swaps were not
  checked against, only the table swap is made.
"""

from __future__ import annotations

import io
import logging
import math
import threading
from typing import Any

import pypdf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PdfReader, _codecs
from pypdf._text_extraction import _text_extractor
from pypdf.generic import ByteStringObject, TextStringObject, _data_structures
from pypdf.generic import _font as font_module
from pypdf.generic._font import Font

from ingest.errors import EmptyFile
from ingest.extract import pypdf_speedups
from ingest.extract._common import clean_text
from ingest.extract.pdf import extract_pdf
from sandbox.samples import render_sample, sample_names
from tests.unit.test_extract_formats import HELVETICA, make_pdf_of_streams, pdf_literal


def _cmap_stream(ranges: bytes, chars: bytes) -> bytes:
    cmap = (
        b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /T def\n"
        + ranges
        + b"\n"
        + chars
        + b"\nendcmap CMapName currentdict /CMap defineresource pop end end"
    )
    return b"<< /Length %d >>\nstream\n" % len(cmap) + cmap + b"\nendstream"


# Objects 3 and 4, which /F5 and /F6 refer to: one-byte and two-byte ToUnicode CMaps.
SHARED = [
    _cmap_stream(
        b"1 begincodespacerange <00> <FF> endcodespacerange",
        b"2 beginbfchar <41> <03B1> <42> <00660069> endbfchar 1 beginbfrange <61> <7A> <0041> endbfrange",
    ),
    _cmap_stream(
        b"1 begincodespacerange <0000> <FFFF> endcodespacerange",
        b"1 beginbfrange <0001> <005F> <0020> endbfrange 1 beginbfchar <0060> <20AC> endbfchar",
    ),
]
_CID = b"/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >>"
FONTS = {
    "/F1": HELVETICA,
    "/F2": b"<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman /Encoding << /Type /Encoding "
    b"/BaseEncoding /WinAnsiEncoding /Differences [65 /Euro /bullet 97 /eacute] >> >>",
    "/F3": b"<< /Type /Font /Subtype /TrueType /BaseFont /Arial /FirstChar 65 /LastChar 70 "
    b"/Widths [600 0 550 610 500 480] /Encoding /WinAnsiEncoding >>",
    "/F4": b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /MacRomanEncoding >>",
    "/F5": b"<< /Type /Font /Subtype /Type1 /BaseFont /Custom /FirstChar 32 /LastChar 126 /Widths ["
    + b" ".join(b"%d" % (300 + 7 * i % 400) for i in range(95))
    + b"] /ToUnicode 3 0 R >>",
    "/F6": b"<< /Type /Font /Subtype /Type0 /BaseFont /CIDX /Encoding /Identity-H /ToUnicode 4 0 R "
    b"/DescendantFonts [<< /Type /Font /Subtype /CIDFontType2 /BaseFont /CIDX " + _CID + b" /DW 1000 "
    b"/W [1 [250 333 408] 10 40 500] >>] >>",
    "/F7": b"<< /Type /Font /Subtype /Type0 /BaseFont /CIDY /Encoding /Identity-H "
    b"/DescendantFonts [<< /Type /Font /Subtype /CIDFontType2 /BaseFont /CIDY " + _CID + b" /DW 600 >>] >>",
}
PYPDF_AS_IS = "pypdf left modified"


def _as_is() -> bool:
    return (
        _text_extractor.encoding_dict_from_named_encoding is _codecs.encoding_dict_from_named_encoding
        and Font.__dict__["from_font_resource"] is pypdf_speedups._FONT_OF
        and _text_extractor.get_text_operands is pypdf_speedups._OPERANDS_OF
        and _data_structures.read_string_from_stream is pypdf_speedups._STRING_OF
    )


def _pdf(streams: list[bytes]) -> bytes:
    return make_pdf_of_streams(streams, fonts=FONTS, shared=SHARED)


def _literal(data: bytes) -> bytes:
    """Any bytes escaped for a PDF string literal (latin-1 maps each byte to one character)."""
    return pdf_literal(data.decode("latin-1")).encode("latin-1")


def _stream(lines: list[tuple[str | None, bytes]]) -> bytes:
    """A page showing each line in the font named before it (None: the font so far, at
    first pypdf's placeholder)."""
    ops = [b"BT 14 TL 72 760 Td"]
    for font, line in lines:
        if font:
            ops.append(font.encode() + b" 10 Tf")
        ops.append(b"(" + _literal(line) + b") Tj T*")
    return b" ".join([*ops, b"ET"])


# A literal's body as written in the file: plain bytes, escapes pypdf knows and some it does
# not, octal codes of one to three digits (over 255 too), escaped line breaks, balanced
# parentheses.
_BODY_PART = st.one_of(
    st.binary(min_size=1, max_size=6).map(_literal),
    st.sampled_from([b"\\n", b"\\t", b"\\(", b"\\)", b"\\\\", b"\\q", b"\\\n", b"\\\r\n", b"(x)", b"(())"]),
    st.integers(0, 0o777).map(lambda n: b"\\%o" % n),
    st.integers(0, 0o777).map(lambda n: b"\\%03o" % n),
)
_BODY = st.lists(_BODY_PART, max_size=8).map(b"".join)
_SHOWN = st.one_of(
    _BODY.map(lambda body: b"(" + body + b") Tj"),
    st.binary(max_size=12).map(lambda data: b"<" + data.hex().encode() + b"> Tj"),
    st.lists(st.one_of(_BODY.map(lambda body: b"(" + body + b")"), st.integers(-900, 900).map(b"%d".__mod__)), max_size=6).map(
        lambda parts: b"[" + b" ".join(parts) + b"] TJ"
    ),
)
_OP = st.one_of(
    _SHOWN,
    st.sampled_from([b"T*", b"0 -14 Td", b"12 0 Td", b"40 0 Td", b"1 0 0 1 300 500 Tm", b"0 1 -1 0 400 300 Tm"]),
    st.sampled_from([b"0.5 Tc", b"0 Tc", b"-0.2 Tc", b"80 Tz", b"100 Tz", b"3 Tw"]),
    st.tuples(st.sampled_from(list(FONTS)), st.sampled_from([6, 10, 13.5])).map(
        lambda font: b"%s %g Tf" % (font[0].encode(), font[1])
    ),
)
_RICH_PAGE = st.lists(_OP, min_size=1, max_size=14).map(lambda ops: b" ".join([b"BT 14 TL 72 760 Td", *ops, b"ET"]))


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


@given(st.lists(st.one_of(_PAGE, _RICH_PAGE), min_size=1, max_size=5))
@settings(max_examples=300, deadline=None)
def test_every_page_reads_as_unmodified_pypdf_reads_it(streams: list[bytes]) -> None:
    content = _pdf(streams)
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
    content = _pdf([_stream([(None, b"page %d \x80" % i), ("/F1", b"one"), ("/F2", b"AB two")]) for i in range(30)])

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
        _pdf(
            [_stream([(None, b"doc %d page %d \x93q\x94" % (d, p)), (f"/F{1 + (p + d) % 7}", b"ABC \x8a")]) for p in range(6)]
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


# --- the text operands and the string literals, against pypdf's own functions -----------------


def _fonts() -> list[Font]:
    """Fresh Fonts of FONTS, and two with odd encodings: a multi-character and an empty value
    (str.translate's path), a value that is not text (pypdf's own path)."""
    resources = PdfReader(io.BytesIO(_pdf([b"BT ET"]))).pages[0]["/Resources"]["/Font"]
    fonts = [Font.from_font_resource(resources[name].get_object()) for name in [*FONTS, "/F1", "/F2"]]
    fonts[-2].encoding = {**fonts[-2].encoding, 0x42: "ff", 0x43: ""}
    fonts[-1].encoding = {**fonts[-1].encoding, 0x44: 7}
    return fonts


_IDENTITY = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
_MATRICES = [
    [1.0, 0.0, 0.0, 1.0, 72.0, 700.0],
    [0.0, 1.0, -1.0, 0.0, 300.0, 400.0],
    [-1.0, 0.0, 0.0, -1.0, 500.0, 500.0],
    [0.0, -1.0, 1.0, 0.0, 100.0, 100.0],
]
# Bytes that the fonts map or measure differently, spaces, the odd encodings' codes (B, C, D).
_SHOWN_BYTES = st.lists(
    st.sampled_from([b" ", b"A", b"B", b"C", b"D", b"a", b"z", b"\x00", b"\x01", b"\x80"]), max_size=20
).map(b"".join)
_CALL = st.tuples(
    st.one_of(st.integers(0, len(FONTS) + 1), st.sampled_from([-2, -1])),  # which of _fonts(): the odd ones often
    st.one_of(
        st.none(), st.binary(max_size=30), _SHOWN_BYTES, st.text(max_size=20), _SHOWN_BYTES.map(lambda b: b.decode("latin-1"))
    ),
    st.sampled_from(_MATRICES),
    st.sampled_from([(0, 90, 180, 270), (0,), (90, 270)]),
    # a space width pypdf sets first; fractions, so that the float sum depends on the order of adding
    st.one_of(st.none(), st.sampled_from([0, 200.0, 137.5, 0.1, 333.33])),
)


def _outcome(call: Any, *args: Any) -> tuple[str, ...]:
    try:
        return ("returned", repr(call(*args)))  # repr: 0.0 and -0.0, 1 and 1.0 differ
    except Exception as exc:
        return ("raised", type(exc).__name__)


@given(st.lists(_CALL, min_size=1, max_size=30))
@settings(max_examples=300, deadline=None)
def test_text_operands_are_those_of_pypdf(calls: list[tuple[Any, ...]]) -> None:
    """Call after call on the same fonts, as a document's pages make them: the same text, the
    same type of it, the same float sum of widths, the same failures."""
    fonts = _fonts()
    with pypdf_speedups.faster_pypdf():
        for index, shown, matrix, orientations, space_width in calls:
            if space_width is not None:
                fonts[index].space_width = space_width
            string_object = TextStringObject if isinstance(shown, str) else ByteStringObject
            operands = [] if shown is None else [string_object(shown)]
            args = (operands, _IDENTITY, matrix, fonts[index], orientations)
            assert _outcome(pypdf_speedups._text_operands, *args) == _outcome(pypdf_speedups._OPERANDS_OF, *args)


def test_widths_add_up_in_pypdfs_order() -> None:
    """A float sum depends on the order of adding: a shown string whose widths a correctly
    rounded sum gives otherwise still gets pypdf's."""
    font = _fonts()[0]
    font.space_width = 0.1
    shown = [ByteStringObject(b" A A A z ")]
    widths = [0.1 if c == " " else font.get_text_width(c) for c in " A A A z "]
    in_order = 0.0
    for width in widths:
        in_order += width
    assert math.fsum(widths) != in_order  # the case is order-sensitive
    with pypdf_speedups.faster_pypdf():
        args = (shown, _IDENTITY, _MATRICES[0], font, (0,))
        assert _outcome(pypdf_speedups._text_operands, *args) == _outcome(pypdf_speedups._OPERANDS_OF, *args)


_STRING_PART = st.one_of(
    st.sampled_from(
        [b"(", b")", b"\\", b"0", b"1", b"3", b"4", b"7", b"8", b"n", b"r", b"t", b"q", b"\n", b"\r", b" ", b"a"]
        + [b"\xff"]
    ),
    # escapes, more often
    st.sampled_from([b"\\\r", b"\\\n", b"\\\r\n", b"\\\n\n", b"\\\r\r", b"\\q", b"\\n", b"\\(", b"\\)"]),
    st.integers(0, 0o777).map(lambda n: b"\\%o" % n),  # octal codes of 1-3 digits, over 255 too
)


@st.composite
def _string_at(draw: st.DrawFn) -> tuple[bytes, int]:
    """Bytes with a string literal at a position: mostly at an opening parenthesis, any
    escapes, nesting and truncation; sometimes anywhere, past the end too."""
    data = draw(st.binary(max_size=3)) + b"(" + b"".join(draw(st.lists(_STRING_PART, max_size=40)))
    at = data.index(b"(") if draw(st.booleans()) else draw(st.integers(0, len(data) + 2))
    return data, at


def _read(read: Any, data: bytes, at: int, encoding: Any) -> tuple[Any, ...]:
    """What `read` gives for the literal at `at`, where it leaves the stream, what it warns."""
    stream = io.BytesIO(data)
    stream.seek(at)
    warned: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: warned.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("pypdf.generic._utils")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        value = read(stream, encoding)
        result: tuple[Any, ...] = (type(value).__name__, value, getattr(value, "original_bytes", None))
    except Exception as exc:
        result = (type(exc).__name__, str(exc))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return result, stream.tell(), warned


@given(_string_at(), st.sampled_from([None, {0x61: "Z", 0x6E: "\u2022"}]))
@settings(max_examples=1000, deadline=None)
def test_string_literals_read_as_pypdf_reads_them(string_at: tuple[bytes, int], encoding: Any) -> None:
    data, at = string_at
    ours = _read(pypdf_speedups._read_string, data, at, encoding)
    assert ours == _read(pypdf_speedups._STRING_OF, data, at, encoding)


def test_other_streams_and_pypdf_versions_are_left_to_pypdf(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream that is not a BytesIO is read by pypdf; on a pypdf version the swaps were not
    checked against, and where another function already stands in for pypdf's, only the
    placeholder table is swapped; on the checked ones all are, and all are put back."""

    class Stream(io.BytesIO):
        pass

    assert _read(pypdf_speedups._read_string, b"(a\\101)", 0, None)[0][1] == "aA"
    read: list[Any] = []
    monkeypatch.setattr(pypdf_speedups, "_STRING_OF", lambda stream, encoding: read.append(stream) or b"pypdf's")
    assert pypdf_speedups._read_string(Stream(b"(x)"), None) == b"pypdf's" and len(read) == 1
    monkeypatch.undo()

    def swapped() -> list[bool]:
        with pypdf_speedups.faster_pypdf():
            return [
                _text_extractor.encoding_dict_from_named_encoding is pypdf_speedups._copy_of_table,
                Font.__dict__["from_font_resource"] is not pypdf_speedups._FONT_OF,
                _text_extractor.get_text_operands is pypdf_speedups._text_operands,
                _data_structures.read_string_from_stream is pypdf_speedups._read_string,
            ]

    if pypdf.__version__.startswith(pypdf_speedups._CHECKED_VERSIONS):
        assert swapped() == [True] * 4
    assert _as_is(), PYPDF_AS_IS
    monkeypatch.setattr(pypdf, "__version__", "7.2.0")
    assert swapped() == [True, False, False, False]
    monkeypatch.undo()
    monkeypatch.setattr(_text_extractor, "get_text_operands", lambda *args: ("another's", False, 0.0))
    assert swapped()[2] is False and _text_extractor.get_text_operands(None)[0] == "another's"
    monkeypatch.undo()
    assert _as_is(), PYPDF_AS_IS
