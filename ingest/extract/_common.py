"""Helpers shared by the extractors: decoding, text hygiene, the "no text" rule.

Error messages built here never quote file content: they name a format, a cause and at most an
exception class, so a report or log line cannot leak what a document says.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Sequence

from ingest.errors import CorruptFile, EmptyFile
from ingest.models import Extracted, Section

_BOMS = (  # UTF-32 before UTF-16: the UTF-32-LE BOM starts with the UTF-16-LE one
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f\ufeff]")  # keeps \t \n \f \r; drops stray BOMs
_LINE_END_SPACE = " \t\u00a0"  # stripped from the end of every line
_BLANK_LINES = re.compile(r"\n{3,}")


def decode_text(content: bytes, declared: str | None = None) -> str:
    """`content` as text: a BOM wins, then a declared charset that decodes cleanly, then
    UTF-8, and only if UTF-8 fails, cp1252 (the usual encoding of legacy Windows text).

    Raises CorruptFile for binary content (NUL bytes without a UTF-16/32 BOM).
    """
    for bom, encoding in _BOMS:
        if content.startswith(bom):
            return content[len(bom) :].decode(encoding, errors="replace")
    if b"\x00" in content[:8192]:
        raise CorruptFile("binary content where text was expected")
    if declared:
        try:
            return content.decode(declared)
        except (LookupError, UnicodeDecodeError):
            pass  # a wrong or unknown label is common; fall through to the sniffing order
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return content.decode("cp1252", errors="replace")


def clean_text(text: str, *, compatibility: bool = False) -> str:
    """Text as the chunker should see it: NFC (NFKC with `compatibility`, which also undoes
    PDF ligatures such as "ﬁ"), `\\n` line ends, no control characters, no trailing spaces,
    at most one blank line in a row, no outer blank lines."""
    text = unicodedata.normalize("NFKC" if compatibility else "NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
    text = _CONTROL.sub("", text)
    # No spaces or tabs at line ends: `str.rstrip` line by line, several times faster than a regex.
    text = "\n".join(line.rstrip(_LINE_END_SPACE) for line in text.split("\n"))
    if "\n\n\n" in text:
        text = _BLANK_LINES.sub("\n\n", text)
    return text.strip("\n").rstrip()


def require_text(sections: Sequence[Section], title: str | None, empty_reason: str) -> Extracted:
    """An `Extracted` of the non-blank sections; EmptyFile(`empty_reason`) if there are none."""
    kept = [s for s in sections if s.text.strip()]
    if not kept:
        raise EmptyFile(empty_reason)
    return Extracted(sections=kept, title=title.strip() if title and title.strip() else None)


def kind(exc: BaseException) -> str:
    """A short, content-free name for what went wrong inside a parser."""
    return type(exc).__name__
