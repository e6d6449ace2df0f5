"""DOCX, PPTX and XLSX rendering of sample sources, with byte-for-byte reproducible packages.

python-docx, python-pptx and openpyxl stamp the time into zip entries and core properties;
`normalize_zip` rewrites each package so its bytes depend only on its contents.
"""

from __future__ import annotations

import io
import re
import zipfile
from datetime import datetime

from sandbox.markup import Source

FIXED_TIME = datetime(2025, 1, 6, 9, 0, 0)
_FIXED_ISO = "2025-01-06T09:00:00Z"
_ZIP_TIME = (2025, 1, 6, 9, 0, 0)
_AUTHOR = "Northwind Robotics"


def render_docx(source: Source) -> bytes:
    """A Word document: title, headings, paragraphs, bullets and tables."""
    import docx

    document = docx.Document()
    _fix_core_properties(document.core_properties, source.title)
    document.add_heading(source.title, level=0)
    for block in source.blocks:
        if block.kind == "heading":
            document.add_heading(block.text, level=min(block.level - 1, 3))
        elif block.kind == "para":
            document.add_paragraph(block.text)
        elif block.kind == "bullet":
            document.add_paragraph(block.text, style="List Bullet")
        elif block.kind == "table":
            width = max(len(row) for row in block.rows)
            table = document.add_table(rows=len(block.rows), cols=width)
            table.style = "Table Grid"
            for r, row in enumerate(block.rows):
                for c, cell in enumerate(row):
                    table.cell(r, c).text = cell
    out = io.BytesIO()
    document.save(out)
    return normalize_zip(out.getvalue())


def render_pptx(source: Source) -> bytes:
    """A deck: a cover slide, then one slide per heading with its text as the body."""
    from pptx import Presentation

    deck = Presentation()
    _fix_core_properties(deck.core_properties, source.title)
    cover = deck.slides.add_slide(deck.slide_layouts[0])
    cover.shapes.title.text = source.title
    subtitle_lines: list[str] = []
    slides: list[tuple[str, list[str]]] = []
    for block in source.blocks:
        if block.kind == "heading":
            slides.append((block.text, []))
            continue
        if block.kind == "page":
            continue
        lines = ["\t".join(r) for r in block.rows] if block.kind == "table" else [block.text]
        (slides[-1][1] if slides else subtitle_lines).extend(lines)
    cover.placeholders[1].text = "\n".join(subtitle_lines) or _AUTHOR
    for heading, lines in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = heading
        slide.placeholders[1].text_frame.text = "\n".join(lines)
    out = io.BytesIO()
    deck.save(out)
    return normalize_zip(out.getvalue())


def _cell_value(text: str) -> str | int | float:
    if re.fullmatch(r"-?\d{1,15}", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d+", text):
        return float(text)
    return text


def render_xlsx(source: Source) -> bytes:
    """A workbook: one sheet per `##` section; table rows become rows, numbers become numbers."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    book.properties.creator = _AUTHOR
    book.properties.title = source.title
    book.properties.created = FIXED_TIME
    sheet = book.active
    sheet.title = "Summary"
    sheet.append([source.title])
    sheet["A1"].font = Font(bold=True)
    used_titles = {"Summary"}
    for block in source.blocks:
        if block.kind == "heading" and block.level == 2:
            title = re.sub(r"[\[\]:*?/\\]", " ", block.text)[:31].strip() or "Sheet"
            while title in used_titles:
                title = title[:28] + f" {len(used_titles)}"
            used_titles.add(title)
            sheet = book.create_sheet(title)
            sheet.append([block.text])
            sheet.cell(row=sheet.max_row, column=1).font = Font(bold=True)
        elif block.kind == "table":
            for row in block.rows:
                sheet.append([_cell_value(c) for c in row])
        elif block.kind in ("para", "bullet", "heading"):
            sheet.append([block.text])
    out = io.BytesIO()
    book.save(out)
    return normalize_zip(out.getvalue())


def _fix_core_properties(props: object, title: str) -> None:
    props.author = _AUTHOR  # type: ignore[attr-defined]
    props.last_modified_by = _AUTHOR  # type: ignore[attr-defined]
    props.title = title  # type: ignore[attr-defined]
    props.created = FIXED_TIME  # type: ignore[attr-defined]
    props.modified = FIXED_TIME  # type: ignore[attr-defined]
    props.revision = 1  # type: ignore[attr-defined]


_CORE_DATES = re.compile(rb"(<dcterms:(created|modified)\b[^>]*>)[^<]*(</dcterms:\2>)")
# python-docx's template carries Word 2010's optional stylesWithEffects part (430 KB); dropping it
# (with its content-type override and relationship) halves every stored .docx.
_DROPPED_PART = "word/stylesWithEffects.xml"
_DROPPED_REFS = re.compile(rb'<(Override|Relationship)\b[^>]*stylesWithEffects\.xml"[^>]*/>')


def normalize_zip(data: bytes) -> bytes:
    """Rewrite an OOXML package so its bytes depend only on its contents.

    Fixed entry timestamps and attributes, stored (uncompressed) entries, and fixed
    `dcterms:created`/`modified` in docProps/core.xml (openpyxl stamps "now" on save).
    Word's optional stylesWithEffects part is dropped to keep stored files small.
    """
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as target:
        for entry in source.infolist():
            if entry.filename == _DROPPED_PART:
                continue
            body = source.read(entry.filename)
            if entry.filename in ("[Content_Types].xml", "word/_rels/document.xml.rels"):
                body = _DROPPED_REFS.sub(b"", body)
            if entry.filename == "docProps/core.xml":
                body = _CORE_DATES.sub(rb"\g<1>" + _FIXED_ISO.encode() + rb"\g<3>", body)
            info = zipfile.ZipInfo(entry.filename, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 0
            info.external_attr = 0o600 << 16
            target.writestr(info, body)
    return out.getvalue()
