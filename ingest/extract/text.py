"""Plain-text formats -> one section: .txt, .md, .csv, .json and the like."""

from __future__ import annotations

import re

from ingest.extract._common import clean_text, decode_text, require_text
from ingest.models import Extracted, Section

_ATX_H1 = re.compile(r"^ {0,3}#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.M)
_FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1", re.M | re.S)


def extract_text(content: bytes, *, markdown: bool = False, charset: str | None = None) -> Extracted:
    """The text as it is, decoded (BOM, then `charset`, then UTF-8, then cp1252) and with
    line ends and control characters normalised. With `markdown`, the first `# heading`
    (outside code fences) becomes the title. Raises EmptyFile for whitespace-only text and
    CorruptFile for binary content."""
    text = clean_text(decode_text(content, charset))
    title = None
    if markdown:
        match = _ATX_H1.search(_FENCE.sub("", text))
        title = match.group(1) if match else None
    return require_text([Section(text)], title, "whitespace-only text")
