"""Office Open XML -> text: DOCX (python-docx), PPTX (python-pptx), XLSX (openpyxl).

All three are zip packages. The package is checked before a parser sees it, so that each
kind of bad input gets its own reason: a password-protected file is not a zip at all but an
OLE compound file holding an `EncryptedPackage` stream; a legacy .doc/.xls/.ppt under a new
name is an OLE file without one; anything else that is not a zip is corrupt; and a zip that
would inflate past `MAX_UNZIPPED_BYTES` is refused before it is inflated.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

from ingest.errors import CorruptFile, EncryptedFile, TooLarge
from ingest.extract._common import clean_text, kind, require_text
from ingest.models import Extracted, Section

OLE_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")  # compound file binary (CFB) signature
MAX_UNZIPPED_BYTES = 512 * 2**20  # zip-bomb guard; real documents inflate far less

_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")  # CFB directory names are UTF-16


def extract_docx(content: bytes) -> Extracted:
    """A Word document's body text in reading order: paragraphs (headings as their own
    paragraphs) and tables (one line per row, cells separated by tabs), as one section.
    The title is the document's Title property, else its first Title or Heading 1 paragraph."""
    _check_package(content, "Word")
    import docx  # imported here: only documents of this kind pay for the import

    document = _open(lambda: docx.Document(io.BytesIO(content)), "Word")
    blocks: list[str] = []
    first_heading: str | None = None
    try:
        for block in _docx_blocks(document.element.body, document):
            if isinstance(block, tuple):  # a Title or Heading 1 paragraph
                first_heading = first_heading or block[1]
                blocks.append(block[1])
            else:
                blocks.append(block)
        title = document.core_properties.title or first_heading
    except Exception as exc:
        raise CorruptFile(f"damaged Word document ({kind(exc)})") from None
    text = clean_text("\n\n".join(b for b in blocks if b.strip()))
    return require_text([Section(text)], title, "no text in Word document")


def extract_pptx(content: bytes) -> Extracted:
    """One section per slide (`page` = slide number): text boxes and placeholders top to
    bottom, tables as tab-separated rows, then the speaker notes. The title is the first
    slide title, else the presentation's Title property."""
    _check_package(content, "PowerPoint")
    import pptx

    presentation = _open(lambda: pptx.Presentation(io.BytesIO(content)), "PowerPoint")
    sections: list[Section] = []
    first_title: str | None = None
    try:
        for number, slide in enumerate(presentation.slides, start=1):
            parts = [_shape_text(shape) for shape in _ordered(slide.shapes)]
            if first_title is None and slide.shapes.title is not None:
                first_title = slide.shapes.title.text_frame.text.strip() or None
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
                parts.append(slide.notes_slide.notes_text_frame.text)
            text = clean_text("\n\n".join(p for p in parts if p.strip()))
            sections.append(Section(text=text, page=number))
        # Slide titles first: decks often carry a template's Title property verbatim.
        title = first_title or presentation.core_properties.title
    except Exception as exc:
        raise CorruptFile(f"damaged PowerPoint presentation ({kind(exc)})") from None
    return require_text(sections, title, "no text in PowerPoint presentation")


def extract_xlsx(content: bytes) -> Extracted:
    """One section per worksheet that has values: the sheet name, then one line per
    non-empty row, cells separated by tabs (cached formula results, not formulas)."""
    _check_package(content, "Excel")
    import openpyxl

    workbook = _open(
        lambda: openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True),
        "Excel",
    )
    sections: list[Section] = []
    try:
        for sheet in workbook.worksheets:
            lines = []
            for row in sheet.iter_rows(values_only=True):
                cells = [_cell_text(value) for value in row]
                while cells and not cells[-1]:
                    cells.pop()
                if cells:
                    lines.append("\t".join(cells))
            if lines:
                sections.append(Section(clean_text(sheet.title + "\n" + "\n".join(lines))))
        title = workbook.properties.title
    except Exception as exc:
        raise CorruptFile(f"damaged Excel workbook ({kind(exc)})") from None
    finally:
        workbook.close()
    return require_text(sections, title, "no values in Excel workbook")


def _check_package(content: bytes, family: str) -> None:
    """Raise the right BadInput when `content` is not a sane Office zip package."""
    if content.startswith(OLE_MAGIC):
        if _ENCRYPTED_STREAM in content:
            raise EncryptedFile(f"password-protected {family} file")
        raise CorruptFile(f"legacy binary {family} format under an Office Open XML name")
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as package:
            names = set(package.namelist())
            inflated = sum(info.file_size for info in package.infolist())
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CorruptFile(f"not a valid {family} file ({kind(exc)})") from None
    if "[Content_Types].xml" not in names:
        raise CorruptFile(f"not a valid {family} file (zip without [Content_Types].xml)")
    if inflated > MAX_UNZIPPED_BYTES:
        raise TooLarge(f"{family} package inflates to {inflated // 2**20} MiB")


def _open(load: Callable[[], Any], family: str) -> Any:
    """Run a parser's loader, mapping its failures to CorruptFile."""
    try:
        return load()
    except Exception as exc:  # each library has its own exception zoo
        raise CorruptFile(f"not a valid {family} file ({kind(exc)})") from None


# --- Word ------------------------------------------------------------------------------

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _docx_blocks(container: Any, parent: Any) -> Iterator[str | tuple[str, str]]:
    """Paragraph and table texts of a body or cell in order; Title and Heading 1
    paragraphs as ("h", text), the candidates for the document title.

    Walks the XML rather than `iter_inner_content()` so that content controls (`w:sdt`,
    common in templates and cover pages) are not skipped.
    """
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for child in container.iterchildren():
        if child.tag == _W + "p":
            paragraph = Paragraph(child, parent)
            text = paragraph.text
            style = _style_name(paragraph)
            if text.strip() and style in ("Title", "Heading 1"):
                yield ("h", text.strip())
            else:
                yield text
        elif child.tag == _W + "tbl":
            yield _table_text(Table(child, parent))
        elif child.tag == _W + "sdt":
            content = child.find(_W + "sdtContent")
            if content is not None:
                yield from _docx_blocks(content, parent)


def _style_name(paragraph: Any) -> str:
    """The paragraph's style name, or "" when the style part is missing or broken."""
    try:
        style = paragraph.style
        return str(style.name or "") if style is not None else ""
    except Exception:
        return ""


def _table_text(table: Any) -> str:
    """A Word table as tab-separated lines; a merged cell is written once; nested tables
    are flattened into their cell."""
    lines = []
    for row in table.rows:
        cells: list[str] = []
        seen: set[int] = set()
        for cell in row.cells:
            if id(cell._tc) in seen:  # a merged cell repeats across the cells it spans
                continue
            seen.add(id(cell._tc))
            parts = [b[1] if isinstance(b, tuple) else b for b in _docx_blocks(cell._tc, cell)]
            cells.append(" ".join(" ".join(p.split()) for p in parts if p.strip()))
        if any(cells):
            lines.append("\t".join(cells).rstrip("\t"))
    return "\n".join(lines)


# --- PowerPoint ------------------------------------------------------------------------


def _ordered(shapes: Any) -> list[Any]:
    """Shapes top to bottom, then left to right (XML order is z-order, not reading order)."""
    return sorted(shapes, key=lambda s: (s.top or 0, s.left or 0))


def _shape_text(shape: Any) -> str:
    """The text of one shape: a text frame, a table, or the shapes of a group. A shape
    python-pptx cannot interpret (some SmartArt, odd auto-shapes) contributes nothing rather
    than failing the whole presentation."""
    from pptx.shapes.group import GroupShape

    try:
        if isinstance(shape, GroupShape):
            texts = (_shape_text(s) for s in _ordered(shape.shapes))
            return "\n".join(t for t in texts if t.strip())
        if getattr(shape, "has_table", False):
            rows = []
            for row in shape.table.rows:
                cells = [" ".join(cell.text.split()) for cell in row.cells]
                if any(cells):
                    rows.append("\t".join(cells).rstrip("\t"))
            return "\n".join(rows)
        if getattr(shape, "has_text_frame", False):
            return str(shape.text_frame.text)
    except (NotImplementedError, KeyError, AttributeError, ValueError):
        return ""
    return ""


# --- Excel -----------------------------------------------------------------------------


def _cell_text(value: object) -> str:
    """A cell value as a reader would see it: numbers as Excel shows them, dates in ISO form."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        # Excel shows 15 significant digits: 0.1 + 0.2 is "0.3", 3.0 is "3".
        return format(value, ".15g")
    if isinstance(value, dt.datetime) and value.time() == dt.time(0):
        return value.date().isoformat()
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    return " ".join(str(value).split())  # a cell's own line breaks would split its row
