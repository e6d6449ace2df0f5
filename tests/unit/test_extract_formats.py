"""Each supported format yields its text in reading order, with page numbers where it has pages.

Invariants defended:
- a PDF gives one section per page with text, `page` numbered from 1, and an owner-password-only
  PDF is read like any other;
- DOCX keeps headings, paragraphs and tables (tab-separated rows, merged cells once) in order;
  PPTX gives one section per slide, with tables and speaker notes; XLSX gives one section per
  sheet with values, rows as tab-separated lines, empty rows and sheets skipped;
- HTML gives visible text only (no script/style), with line structure and decoded entities;
- text is decoded by BOM, then UTF-8, then cp1252; a Markdown `# heading` is the title;
- extraction is pure: arguments and results survive pickling, so a process pool can run it.

The sample files are generated here (a hand-written PDF writer; python-docx, python-pptx and
openpyxl for Office), so the tests need no fixtures on disk.
"""

from __future__ import annotations

import io
import pickle
import re
import unicodedata
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import docx
import openpyxl
import pptx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pptx.util import Inches
from pypdf import PdfReader, PdfWriter

from ingest.extract import SUPPORTED_EXTENSIONS, extract, is_supported
from ingest.extract._common import clean_text
from ingest.models import Extracted

# --- sample builders (also used by test_extract_bad_input.py) -------------------------------


def make_pdf(pages: list[str], *, title: str | None = None) -> bytes:
    """A minimal valid PDF, one page per string (lines split on "\\n"; "" = a page with no text)."""
    streams = []
    for text in pages:
        shows = " ".join(f"({pdf_literal(line)}) Tj T*" for line in text.split("\n")) if text else ""
        streams.append((f"BT /F1 11 Tf 14 TL 72 760 Td {shows} ET" if shows else "").encode("cp1252"))
    return make_pdf_of_streams(streams, title=title)


def pdf_literal(s: str) -> str:
    """`s` escaped for a PDF string literal `( )`."""
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


HELVETICA = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"


def make_pdf_of_streams(
    streams: list[bytes],
    *,
    title: str | None = None,
    fonts: dict[str, bytes] | None = None,
    shared: Sequence[bytes] = (),
) -> bytes:
    """A minimal valid PDF, one page per content stream; every page's resources hold the same
    `fonts` (resource name -> font dictionary), by default Helvetica as /F1. `shared` are more
    objects, numbered from 3 in order, for the fonts to refer to (a ToUnicode CMap stream)."""
    fonts = fonts or {"/F1": HELVETICA}
    objects: dict[int, bytes] = {3 + i: body for i, body in enumerate(shared)}
    first_font = 3 + len(shared)
    font_ids = {name: first_font + i for i, name in enumerate(fonts)}
    page_ids = [first_font + len(fonts) + 2 * i for i in range(len(streams))]
    objects[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    kids = " ".join(f"{p} 0 R" for p in page_ids)
    objects[2] = f"<< /Type /Pages /Kids [{kids}] /Count {len(streams)} >>".encode()
    for name, font in fonts.items():
        objects[font_ids[name]] = font
    resources = " ".join(f"{name} {font_ids[name]} 0 R" for name in fonts)
    for page_id, stream in zip(page_ids, streams):
        objects[page_id] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << {resources} >> >> /Contents {page_id + 1} 0 R >>"
        ).encode()
        objects[page_id + 1] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
    info = None
    if title is not None:
        info = max(objects) + 1
        objects[info] = f"<< /Title ({pdf_literal(title)}) >>".encode()
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n"
    xref = len(out)
    size = max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for number in range(1, size):
        out += b"%010d 00000 n \n" % offsets[number]
    trailer = f"<< /Size {size} /Root 1 0 R" + (f" /Info {info} 0 R" if info else "") + " >>"
    out += b"trailer\n" + trailer.encode() + b"\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def encrypt_pdf(content: bytes, *, user_password: str, owner_password: str = "owner") -> bytes:
    """`content` encrypted with AES-256 by pypdf."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(content)))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx() -> bytes:
    document = docx.Document()
    document.add_heading("Quarterly Report", level=1)
    document.add_paragraph("Revenue grew in every region.")
    document.add_heading("Details", level=2)
    table = document.add_table(rows=2, cols=3)
    for col, value in enumerate(["Region", "Q1", "Q2"]):
        table.cell(0, col).text = value
    merged = table.cell(1, 0).merge(table.cell(1, 1))
    merged.text = "North"
    table.cell(1, 2).text = "42"
    document.add_paragraph("Outlook is stable.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_pptx() -> bytes:
    presentation = pptx.Presentation()
    first = presentation.slides.add_slide(presentation.slide_layouts[1])
    first.shapes.title.text = "Roadmap 2025"
    first.placeholders[1].text = "Ship the search service"
    first.notes_slide.notes_text_frame.text = "Mention the pilot customers"
    second = presentation.slides.add_slide(presentation.slide_layouts[5])
    second.shapes.title.text = "Budget"
    table = second.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(4), Inches(1)).table
    for (row, col), value in {(0, 0): "Team", (0, 1): "Cost", (1, 0): "Search", (1, 1): "10"}.items():
        table.cell(row, col).text = value
    presentation.slides.add_slide(presentation.slide_layouts[6])  # a blank slide
    out = io.BytesIO()
    presentation.save(out)
    return out.getvalue()


def make_xlsx() -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Budget"
    sheet.append(["Item", "Cost"])
    sheet.append(["Paper", 3.0])
    sheet.append([None, None])
    sheet.append(["Ink", 2.5])
    workbook.create_sheet("Empty")
    notes = workbook.create_sheet("Notes")
    notes["B2"] = "approved"
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


# --- PDF ------------------------------------------------------------------------------------


def test_pdf_gives_one_section_per_page_with_1_based_numbers() -> None:
    content = make_pdf(["Hello page one\nsecond line (x)", "", "Page three café"], title="Handbook")
    extracted = extract("handbook.pdf", "application/pdf", content)
    assert [(s.page, s.text) for s in extracted.sections] == [
        (1, "Hello page one\nsecond line (x)"),
        (3, "Page three café"),  # page 2 has no text and is left out, numbering is kept
    ]
    assert extracted.title == "Handbook"


def test_owner_password_only_pdf_is_read() -> None:
    content = encrypt_pdf(make_pdf(["Restricted but readable"]), user_password="")
    assert extract("r.pdf", None, content).sections[0].text == "Restricted but readable"


# --- Office ---------------------------------------------------------------------------------


def test_docx_keeps_headings_paragraphs_and_tables_in_order() -> None:
    extracted = extract("report.docx", None, make_docx())
    assert extracted.sections[0].text == (
        "Quarterly Report\n\nRevenue grew in every region.\n\nDetails\n\n"
        "Region\tQ1\tQ2\nNorth\t42\n\nOutlook is stable."
    )
    assert extracted.sections[0].page is None
    assert extracted.title == "Quarterly Report"


def test_pptx_gives_one_section_per_slide_with_tables_and_notes() -> None:
    extracted = extract("deck.pptx", None, make_pptx())
    assert [(s.page, s.text) for s in extracted.sections] == [
        (1, "Roadmap 2025\n\nShip the search service\n\nMention the pilot customers"),
        (2, "Budget\n\nTeam\tCost\nSearch\t10"),
    ]
    assert extracted.title == "Roadmap 2025"


def test_xlsx_gives_one_section_per_sheet_with_values() -> None:
    extracted = extract("budget.xlsx", None, make_xlsx())
    assert [s.text for s in extracted.sections] == [
        "Budget\nItem\tCost\nPaper\t3\nInk\t2.5",
        "Notes\n\tapproved",
    ]


# --- HTML -----------------------------------------------------------------------------------

PAGE = b"""<html><head><title>Team &amp; Site</title><style>p { color: red }</style>
<script>var s = "<p>not text</p>";</script></head><body>
<h1>Welcome to   the <b>team</b></h1><p>First&nbsp;para with &lt;tags&gt; and caf&eacute;.<br>New line</p>
<ul><li>one</li><li>two</li></ul>
<table><tr><th>A</th><th>B</th></tr><tr><td>1</td><td>2</td></tr></table>
<div>inline <span>span</span> text</div><svg><title>icon</title><text>drawn</text></svg>
<p>end</p></body></html>"""


def test_html_gives_visible_text_with_line_structure() -> None:
    extracted = extract("Home.aspx", "text/html", PAGE)
    assert extracted.sections[0].text == (
        "Welcome to the team\n\nFirst para with <tags> and café.\nNew line\n\n"
        "one\ntwo\n\nA\tB\n1\t2\n\ninline span text\n\nend"
    )
    assert extracted.title == "Team & Site"


def test_html_fragment_from_web_parts_takes_its_first_h1_as_title() -> None:
    fragment = "<div><h1>Café news</h1><p>Caf\u00e9 opens</p></div>".encode("latin-1")
    extracted = extract("News", "text/html; charset=ISO-8859-1", fragment)
    assert extracted.title == "Café news"
    assert extracted.sections[0].text == "Café news\n\nCafé opens"


# --- text -----------------------------------------------------------------------------------


def test_markdown_first_h1_outside_code_is_the_title() -> None:
    content = "\ufeff```\n# not a heading\n```\n# Release notes #\nbody\r\n".encode()
    extracted = extract("NOTES.MD", None, content)
    assert extracted.title == "Release notes"
    assert extracted.sections[0].text.startswith("```")  # the BOM is gone, CRLF normalised


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("naïve café".encode(), "naïve café"),
        ("café \u201cquoted\u201d".encode("cp1252"), "café \u201cquoted\u201d"),  # not UTF-8
        ("\ufeffutf-8 with BOM".encode(), "utf-8 with BOM"),
        ("utf-16 with BOM".encode("utf-16"), "utf-16 with BOM"),
    ],
)
def test_text_is_decoded_by_bom_then_utf8_then_cp1252(content: bytes, expected: str) -> None:
    assert extract("a.txt", None, content).sections[0].text == expected


def test_csv_and_json_are_read_as_text() -> None:
    assert extract("a.csv", None, b"a,b\n1,2\n").sections[0].text == "a,b\n1,2"
    assert extract("a.json", None, b'{"k": "v"}').sections[0].text == '{"k": "v"}'


def test_a_downloaded_file_is_read_from_its_path(tmp_path: Path) -> None:
    path = tmp_path / "download.bin"
    path.write_bytes(make_pdf(["from disk"]))
    assert extract("report.pdf", None, path).sections[0].text == "from disk"


# --- choosing the extractor -----------------------------------------------------------------


def test_extension_wins_over_mime_type_and_mime_type_covers_names_without_one() -> None:
    assert extract("notes.txt", "text/html", b"<b>kept as text</b>").sections[0].text == "<b>kept as text</b>"
    assert extract("Home", "text/html", b"<b>bold</b>").sections[0].text == "bold"
    assert is_supported("Report.PDF", None)
    assert is_supported("no-extension", "application/vnd.openxmlformats-officedocument.wordprocessingml.document")
    assert not is_supported("photo.png", "image/png")
    assert not is_supported("legacy.doc", "application/msword")
    assert {".pdf", ".docx", ".pptx", ".xlsx", ".html", ".aspx", ".txt", ".md", ".csv", ".json"} <= SUPPORTED_EXTENSIONS


def _extract_in_worker(args: tuple[str, str | None, bytes]) -> Extracted:
    return extract(*args)


def test_extraction_runs_in_a_process_pool() -> None:
    jobs = [("a.pdf", None, make_pdf(["pool page"])), ("b.docx", None, make_docx())]
    with ProcessPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_extract_in_worker, jobs))
    assert results[0].sections[0].text == "pool page"
    assert results[1].title == "Quarterly Report"
    assert pickle.loads(pickle.dumps(results[1])) == results[1]


# --- text hygiene -------------------------------------------------------------------------------

_HYGIENE_ALPHABET = st.sampled_from(["a", "Z", " ", "\t", "\u00a0", "\n", "\r", "\f", "\x00", "\x0b", "\ufb01", "é", "e\u0301", "."])


@given(st.lists(_HYGIENE_ALPHABET, max_size=60).map("".join), st.booleans())
@settings(max_examples=400, deadline=None)
def test_clean_text_is_its_regex_definition(text: str, compatibility: bool) -> None:
    # What clean_text promises, written the slow and obvious way.
    expected = unicodedata.normalize("NFKC" if compatibility else "NFC", text)
    expected = expected.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
    expected = re.sub(r"[\x00-\x08\x0b\x0e-\x1f\x7f\ufeff]", "", expected)
    expected = re.sub(r"[ \t\u00a0]+\n", "\n", expected + "\n")
    expected = re.sub(r"\n{3,}", "\n\n", expected).strip("\n").rstrip()
    assert clean_text(text, compatibility=compatibility) == expected
