"""A small, deterministic PDF writer: text in the standard Helvetica fonts, nothing else.

Hand-written rather than a library so that the bytes are fixed (no timestamps, no random ids)
and so that we know exactly which text sits on which page: `page_text` is what a text
extractor such as pypdf should give back for that page.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

PAGE_WIDTH, PAGE_HEIGHT = 612, 792  # US Letter, in points
MARGIN = 72
TEXT_WIDTH = PAGE_WIDTH - 2 * MARGIN

BlockStyle = Literal["title", "heading", "body", "bullet"]

# Advance widths of Helvetica for ASCII 32..126, in 1/1000 em (Adobe core font metrics).
_HELVETICA_WIDTHS = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
]  # fmt: skip

_STYLES: dict[str, tuple[float, bool, float]] = {
    # style: (font size, bold, space before in points)
    "title": (18.0, True, 0.0),
    "heading": (13.0, True, 10.0),
    "body": (10.5, False, 6.0),
    "bullet": (10.5, False, 2.0),
}


@dataclass(frozen=True, slots=True)
class PdfBlock:
    """A paragraph to lay out: a title, a heading, body text or one bullet."""

    text: str
    style: BlockStyle = "body"


@dataclass(frozen=True, slots=True)
class PdfLine:
    """One line of text placed on a page."""

    text: str
    size: float
    bold: bool
    space_before: float = 0.0


def text_width(text: str, size: float, bold: bool = False) -> float:
    """The width in points of `text` in Helvetica (bold is approximated as 5% wider)."""
    units = sum(_HELVETICA_WIDTHS[ord(c) - 32] if 32 <= ord(c) <= 126 else 556 for c in text)
    return units * size / 1000 * (1.05 if bold else 1.0)


def wrap(text: str, size: float, bold: bool = False, width: float = TEXT_WIDTH) -> list[str]:
    """Break `text` into lines no wider than `width`, at spaces."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if current and text_width(candidate, size, bold) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    return lines


def paginate(blocks: Sequence[PdfBlock | None]) -> list[list[PdfLine]]:
    """Lay blocks out on pages; `None` in `blocks` forces a page break."""
    pages: list[list[PdfLine]] = [[]]
    y = PAGE_HEIGHT - MARGIN
    for block in blocks:
        if block is None:
            if pages[-1]:
                pages.append([])
                y = PAGE_HEIGHT - MARGIN
            continue
        size, bold, before = _STYLES[block.style]
        prefix = "- " if block.style == "bullet" else ""
        for n, line in enumerate(wrap(prefix + block.text, size, bold)):
            gap = before if n == 0 and pages[-1] else 0.0
            leading = size * 1.35
            if y - gap - leading < MARGIN and pages[-1]:
                pages.append([])
                y = PAGE_HEIGHT - MARGIN
                gap = 0.0
            y -= gap + leading
            pages[-1].append(PdfLine(line, size, bold, gap))
    return [page for page in pages if page] or [[]]


def page_text(page: Sequence[PdfLine]) -> str:
    """The text of one laid-out page, one line per line."""
    return "\n".join(line.text for line in page)


def _escape(text: str) -> bytes:
    raw = text.encode("cp1252", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _content_stream(page: Sequence[PdfLine]) -> bytes:
    ops = [b"BT"]
    y = PAGE_HEIGHT - MARGIN
    for line in page:
        y -= line.space_before + line.size * 1.35
        font = b"/F2" if line.bold else b"/F1"
        # Absolute positioning per line (Tm) keeps each line independent and extractors happy.
        ops.append(font + b" %.1f Tf" % line.size)
        ops.append(b"1 0 0 1 %d %.2f Tm" % (MARGIN, y))
        ops.append(b"(" + _escape(line.text) + b") Tj")
    ops.append(b"ET")
    return b"\n".join(ops) + b"\n"


def build_pdf(pages: Sequence[Sequence[PdfLine]], *, title: str = "") -> bytes:
    """A complete PDF file with one page per entry of `pages`. Same input, same bytes."""
    page_count = len(pages)
    # Objects: 1 catalog, 2 page tree, 3 Helvetica, 4 Helvetica-Bold, 5 info, then page/content pairs.
    page_ids = [6 + 2 * n for n in range(page_count)]
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % p for p in page_ids)
        + b"] /Count %d >>" % page_count,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
        b"<< /Title (" + _escape(title) + b") /Producer (spindex sandbox)"
        b" /CreationDate (D:20250106090000Z) >>",
    ]
    for n, page in enumerate(pages):
        stream = _content_stream(page)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d]" % (PAGE_WIDTH, PAGE_HEIGHT)
            + b" /Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents %d 0 R >>" % (page_ids[n] + 1)
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream")

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    # The file identifier is a digest of the body, so it is unique per document yet reproducible.
    file_id = hashlib.md5(bytes(out)).hexdigest().encode()
    out += (
        b"trailer\n<< /Size %d /Root 1 0 R /Info 5 0 R /ID [<%s> <%s>] >>\n"
        % (len(objects) + 1, file_id, file_id)
    )
    out += b"startxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)
