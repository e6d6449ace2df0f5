"""Sample file content: the same text rendered as PDF, DOCX, PPTX, XLSX, HTML, Markdown or text.

A sample is a source in the sample markup (`sandbox.markup`) in `sandbox/samples/<name>.md`.
The target file's extension picks the format. Every output is byte-identical across processes
and machines: office files get fixed core properties, fixed zip entry metadata and no
compression (deflate output differs between zlib builds); PDFs come from `sandbox.pdfgen`.
"""

from __future__ import annotations

import hashlib
import html
import io
import re
from dataclasses import dataclass
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path

from sandbox import office, pdfgen
from sandbox.content import SUPPORTED_EXTENSIONS, BytesContent, Content, LazyContent, extension
from sandbox.markup import Source, parse_source

SAMPLES_DIR = Path(__file__).parent / "samples"
ENCRYPTED_PDF_PASSWORD = "northwind-sandbox"  # a user password: pypdf cannot open it without


@dataclass(frozen=True, slots=True)
class Rendered:
    """Content for a file, with what tests may assert about it."""

    content: Content
    text: str | None
    page_texts: list[str] | None = None
    bad_input: str | None = None


def sample_names() -> list[str]:
    """The names `sample:` may refer to."""
    return sorted(p.stem for p in SAMPLES_DIR.glob("*.md"))


@lru_cache(maxsize=None)
def load_source(name: str) -> Source:
    """The parsed source of sample `name`; KeyError when there is none."""
    path = SAMPLES_DIR / f"{name}.md"
    if not path.is_file():
        raise KeyError(name)
    return parse_source(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def render_sample(name: str, file_name: str) -> Rendered:
    """Sample `name` rendered in the format that `file_name`'s extension names."""
    return render_source(load_source(name), file_name)


def render_text(text: str, file_name: str) -> Rendered:
    """Literal text as the content of `file_name`.

    Text formats get the text as UTF-8 bytes; PDF and office formats get it parsed as sample
    markup and rendered, so a handmade tenant can say `text:` on a `.docx` too.
    """
    ext = extension(file_name)
    if ext in (".pdf", ".docx", ".pptx", ".xlsx"):
        return render_source(parse_source(text), file_name)
    return from_bytes(text.encode("utf-8"), file_name)


def from_bytes(data: bytes, file_name: str) -> Rendered:
    """Given bytes as the content of `file_name`; text formats also get their text decoded."""
    ext = extension(file_name)
    text: str | None = None
    if ext in (".txt", ".md", ".markdown", ".html", ".htm", ".aspx"):
        decoded = data.decode("utf-8", errors="replace")
        text = html_to_text(decoded) if ext in (".html", ".htm", ".aspx") else decoded
    bad = _bad_input_for(file_name, len(data))
    return Rendered(BytesContent(data), None if bad else text, None, bad)


def render_content(content: bytes | str, file_name: str) -> Rendered:
    """Bytes as given, or text rendered into `file_name`'s format (see `render_text`)."""
    return from_bytes(content, file_name) if isinstance(content, bytes) else render_text(content, file_name)


def render_source(source: Source, file_name: str) -> Rendered:
    """A parsed source rendered in `file_name`'s format."""
    ext = extension(file_name)
    page_texts: list[str] | None = None
    if ext == ".pdf":
        pages = pdfgen.paginate(_pdf_blocks(source))
        data = pdfgen.build_pdf(pages, title=source.title)
        page_texts = [pdfgen.page_text(page) for page in pages]
    elif ext == ".docx":
        data = office.render_docx(source)
    elif ext == ".pptx":
        data = office.render_pptx(source)
    elif ext == ".xlsx":
        data = office.render_xlsx(source)
    elif ext in (".html", ".htm"):
        data = _html(source).encode("utf-8")
    elif ext in (".md", ".markdown"):
        data = _markdown(source).encode("utf-8")
    else:
        data = source.plain_text().encode("utf-8") + b"\n"
    bad = _bad_input_for(file_name, len(data))
    return Rendered(BytesContent(data), None if bad else source.plain_text(), page_texts, bad)


def _bad_input_for(file_name: str, size: int) -> str | None:
    if extension(file_name) not in SUPPORTED_EXTENSIONS:
        return "unsupported_format"
    return "empty" if size == 0 else None


# --- bad inputs --------------------------------------------------------------------------


def corrupt_pdf(file_name: str) -> Rendered:
    """A file that starts like a PDF and then breaks off: no objects a reader can recover."""
    seed = hashlib.sha256(file_name.encode()).digest()
    data = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pa" + seed * 64
    return Rendered(BytesContent(data), None, None, "corrupt")


@lru_cache(maxsize=None)
def encrypted_pdf(file_name: str, source: Source | None = None) -> Rendered:
    """A valid PDF encrypted (RC4-128) with a user password, so it cannot be read without it."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import ArrayObject, ByteStringObject

    source = source or parse_source(
        "# Confidential draft\nThis document is protected with a password and cannot be indexed."
    )
    plain = render_source(source, "draft.pdf")
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(plain.content.read())))
    # pypdf draws random file ids; fixed ones keep the encrypted bytes reproducible.
    fixed_id = ByteStringObject(hashlib.md5(file_name.encode()).digest())
    writer._ID = ArrayObject((fixed_id, fixed_id))
    writer.encrypt(ENCRYPTED_PDF_PASSWORD, algorithm="RC4-128")
    writer._ID = ArrayObject((fixed_id, fixed_id))
    out = io.BytesIO()
    writer.write(out)
    return Rendered(BytesContent(out.getvalue()), None, None, "encrypted")


def empty_file(file_name: str) -> Rendered:
    """Zero bytes."""
    return Rendered(BytesContent(b""), None, None, "empty")


def oversize(file_name: str, size: int) -> Rendered:
    """A file that reports `size` bytes and is generated only while it is downloaded."""
    header = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" if extension(file_name) == ".pdf" else b""
    return Rendered(LazyContent(size, file_name, header), None, None, "too_large")


def binary(file_name: str, size: int) -> Rendered:
    """`size` deterministic pseudo-random bytes, e.g. for a `.bin` or `.exe` file."""
    chunks, counter = [], 0
    while sum(len(c) for c in chunks) < size:
        chunks.append(hashlib.sha256(f"{file_name}:{counter}".encode()).digest())
        counter += 1
    data = b"".join(chunks)[:size]
    return Rendered(BytesContent(data), None, None, _bad_input_for(file_name, size) or "unsupported_format")


# --- text formats ------------------------------------------------------------------------


def _markdown(source: Source) -> str:
    lines = [f"# {source.title}", ""]
    for block in source.blocks:
        if block.kind == "heading":
            lines += ["#" * block.level + " " + block.text, ""]
        elif block.kind == "para":
            lines += [block.text, ""]
        elif block.kind == "bullet":
            lines.append(f"- {block.text}")
        elif block.kind == "table":
            header, *rest = block.rows
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "---|" * len(header))
            lines += ["| " + " | ".join(row) + " |" for row in rest]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _html(source: Source) -> str:
    body: list[str] = [f"<h1>{html.escape(source.title)}</h1>"]
    in_list = False
    for block in source.blocks:
        if block.kind != "bullet" and in_list:
            body.append("</ul>")
            in_list = False
        if block.kind == "heading":
            body.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif block.kind == "para":
            body.append(f"<p>{html.escape(block.text)}</p>")
        elif block.kind == "bullet":
            if not in_list:
                body.append("<ul>")
                in_list = True
            body.append(f"<li>{html.escape(block.text)}</li>")
        elif block.kind == "table":
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in block.rows
            )
            body.append(f"<table>{rows}</table>")
    if in_list:
        body.append("</ul>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">'
        f"<title>{html.escape(source.title)}</title></head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


class _TextExtractor(HTMLParser):
    _BLOCK_TAGS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol"})

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "title"):
            self._skip += 1
        elif tag in self._BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "title"):
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCK_TAGS:
            self.parts.append("\n")
        elif tag == "td":
            self.parts.append("\t")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """The visible text of an HTML fragment: one line per block element, blank lines dropped."""
    parser = _TextExtractor()
    parser.feed(markup)
    lines = (re.sub(r"[ \t]+", " ", line).strip() for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def render_page(title: str, webparts: list[str]) -> Rendered:
    """What a Site Pages `.aspx` item downloads as: its web parts in one HTML document."""
    parts = "\n".join(f'<div class="webpart">{part}</div>' for part in webparts)
    data = f"<html><head><title>{html.escape(title)}</title></head>\n<body>\n{parts}\n</body></html>\n"
    text = "\n".join([title] + [html_to_text(part) for part in webparts])
    return Rendered(BytesContent(data.encode("utf-8")), text)


# --- PDF ------------------------------------------------------------------------------------


def _pdf_blocks(source: Source) -> list[pdfgen.PdfBlock | None]:
    blocks: list[pdfgen.PdfBlock | None] = [pdfgen.PdfBlock(source.title, "title")]
    for block in source.blocks:
        if block.kind == "page":
            blocks.append(None)
        elif block.kind == "heading":
            blocks.append(pdfgen.PdfBlock(block.text, "heading"))
        elif block.kind == "para":
            blocks.append(pdfgen.PdfBlock(block.text, "body"))
        elif block.kind == "bullet":
            blocks.append(pdfgen.PdfBlock(block.text, "bullet"))
        elif block.kind == "table":
            blocks += [pdfgen.PdfBlock("  |  ".join(row), "bullet") for row in block.rows]
    return blocks
