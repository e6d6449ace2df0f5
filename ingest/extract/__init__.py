"""File bytes -> `Extracted` text, one extractor per format family.

    extract(name, mime_type, content)   the one entry point the pipeline calls
    is_supported(name, mime_type)       decide before downloading

The extractor is chosen by the file name's extension first, then by the MIME type SharePoint
reports (a name without a known extension, e.g. a site page). Every function here is pure:
bytes (or a path to read) and strings in, an `Extracted` (or a `BadInput`) out, no shared
state, so the pipeline can run it in a thread or process pool. Bad input raises a `BadInput` subclass whose `reason`
the run report records: `unsupported_format`, `corrupt`, `encrypted`, `empty`, `too_large`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from pathlib import Path

from ingest.errors import EmptyFile, UnsupportedFormat
from ingest.extract.html import extract_html
from ingest.extract.office import extract_docx, extract_pptx, extract_xlsx
from ingest.extract.pdf import extract_pdf
from ingest.extract.text import extract_text
from ingest.models import Extracted

__all__ = ["SUPPORTED_EXTENSIONS", "SUPPORTED_MIME_TYPES", "extract", "is_supported"]

_Extractor = Callable[[bytes, str | None], Extracted]  # (content, declared charset)


def _pdf(content: bytes, charset: str | None) -> Extracted:
    return extract_pdf(content)


def _docx(content: bytes, charset: str | None) -> Extracted:
    return extract_docx(content)


def _pptx(content: bytes, charset: str | None) -> Extracted:
    return extract_pptx(content)


def _xlsx(content: bytes, charset: str | None) -> Extracted:
    return extract_xlsx(content)


def _html(content: bytes, charset: str | None) -> Extracted:
    return extract_html(content, charset)


def _plain(content: bytes, charset: str | None) -> Extracted:
    return extract_text(content, charset=charset)


def _markdown(content: bytes, charset: str | None) -> Extracted:
    return extract_text(content, markdown=True, charset=charset)


_BY_EXTENSION: dict[str, _Extractor] = {
    ".pdf": _pdf,
    ".docx": _docx,
    ".pptx": _pptx,
    ".xlsx": _xlsx,
    ".xlsm": _xlsx,  # macro-enabled workbook: same package, macros are not read
    ".html": _html,
    ".htm": _html,
    ".xhtml": _html,
    ".aspx": _html,  # SharePoint site pages, rendered to HTML by the source
    ".md": _markdown,
    ".markdown": _markdown,
    ".txt": _plain,
    ".text": _plain,
    ".csv": _plain,
    ".tsv": _plain,
    ".json": _plain,
    ".log": _plain,
    ".rst": _plain,
    ".yaml": _plain,
    ".yml": _plain,
}
_BY_MIME: dict[str, _Extractor] = {
    "application/pdf": _pdf,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": _docx,
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": _pptx,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": _xlsx,
    "application/vnd.ms-excel.sheet.macroenabled.12": _xlsx,
    "text/html": _html,
    "application/xhtml+xml": _html,
    "text/markdown": _markdown,
    "text/x-markdown": _markdown,
    "text/plain": _plain,
    "text/csv": _plain,
    "text/tab-separated-values": _plain,
    "application/json": _plain,
    "text/x-rst": _plain,
    "application/yaml": _plain,
    "application/x-yaml": _plain,
    "text/yaml": _plain,
}

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_BY_EXTENSION)
"""Lower-case file extensions, with the dot, that `extract` reads."""
SUPPORTED_MIME_TYPES: frozenset[str] = frozenset(_BY_MIME)
"""Lower-case MIME types (without parameters) that `extract` reads."""


def is_supported(name: str, mime_type: str | None) -> bool:
    """True if `extract` has an extractor for this name or MIME type: call it before
    downloading, so an unsupported file costs no transfer."""
    return _choose(name, mime_type) is not None


def extract(name: str, mime_type: str | None, content: bytes | Path) -> Extracted:
    """The text of a file named `name`, chosen by extension, then by MIME type. `content` is
    the file's bytes, or the path of a downloaded copy (read here, in the worker).

    Raises UnsupportedFormat (naming the type) when no extractor fits, EmptyFile for zero
    bytes or no text, and CorruptFile, EncryptedFile or TooLarge from the extractor.
    """
    extractor = _choose(name, mime_type)
    if extractor is None:
        raise UnsupportedFormat(f"no extractor for {_describe(name, mime_type)}")
    if isinstance(content, Path):
        content = content.read_bytes()
    if not content:
        raise EmptyFile("zero-byte file")
    return extractor(content, _charset(mime_type))


def _choose(name: str, mime_type: str | None) -> _Extractor | None:
    extension = posixpath.splitext(name.lower())[1]
    if extension in _BY_EXTENSION:
        return _BY_EXTENSION[extension]
    return _BY_MIME.get(_mime(mime_type))


def _mime(mime_type: str | None) -> str:
    """The bare, lower-case MIME type: "Text/HTML; charset=utf-8" -> "text/html"."""
    return (mime_type or "").split(";", 1)[0].strip().lower()


def _charset(mime_type: str | None) -> str | None:
    """The `charset` parameter of a MIME type, if any."""
    for parameter in (mime_type or "").split(";")[1:]:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'")
    return None


def _describe(name: str, mime_type: str | None) -> str:
    """'.png (image/png)', 'files without an extension (text/x-foo)' and the like."""
    extension = posixpath.splitext(name.lower())[1]
    described = f"'{extension}'" if extension else "files without an extension"
    return f"{described} ({_mime(mime_type)})" if mime_type else described
