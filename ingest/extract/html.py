"""HTML -> visible text (stdlib `html.parser`), for web pages and SharePoint site pages.

Site pages reach the pipeline as HTML assembled from their web parts' `innerHtml`, so input
is often a bare fragment with no `<html>` or `<title>`; both are handled alike.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from ingest.extract._common import clean_text, decode_text, require_text
from ingest.models import Extracted, Section

# Elements whose content is never shown as text.
_HIDDEN = frozenset({"script", "style", "noscript", "template", "svg", "math", "iframe", "object"})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
# Block elements and the break around them: 2 = a blank line, 1 = a line break. Breaks
# coalesce (the larger wins), so nested blocks do not pile up empty lines.
_BREAKS: dict[str, int] = {
    **dict.fromkeys(_HEADINGS, 2),
    **dict.fromkeys(("p", "pre", "blockquote", "table", "ul", "ol", "dl", "figure", "hr"), 2),
    **dict.fromkeys(
        (
            "address", "article", "aside", "body", "caption", "dd", "details", "dialog", "div",
            "dt", "fieldset", "figcaption", "footer", "form", "header", "hgroup", "html",
            "legend", "li", "main", "nav", "section", "summary", "tbody", "tfoot", "thead", "tr",
        ),
        1,
    ),
}  # fmt: skip
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)
_SPACES = re.compile(r"[ \t\n\r\f\v\u00a0]+")


def extract_html(content: bytes, charset: str | None = None) -> Extracted:
    """The visible text of an HTML document or fragment, as one section.

    Script, style and similar content is dropped; entities are decoded; block elements
    (paragraphs, list items, divs...) start new lines; headings stand on their own lines
    between blank lines; table rows become lines with tab-separated cells; `<br>` breaks a
    line; other whitespace collapses as a browser would, except inside `<pre>`. The title is
    the `<title>`, else the first `<h1>`. The charset is a BOM, else `charset`, else a
    `<meta charset>`, else UTF-8 (cp1252 if that fails).
    """
    declared = charset or _meta_charset(content)
    parser = _VisibleText()
    parser.feed(decode_text(content, declared))
    parser.close()
    text = clean_text(parser.text())
    return require_text([Section(text)], parser.title or parser.first_h1, "no visible text in HTML")


def _meta_charset(content: bytes) -> str | None:
    """The charset a `<meta>` tag in the first 4 KiB declares, if any."""
    match = _META_CHARSET.search(content[:4096])
    return match.group(1).decode("ascii") if match else None


class _VisibleText(HTMLParser):
    """Collects visible text with line structure; one instance per document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._out: list[str] = []
        self._pending = 0  # line breaks owed before the next text
        self._hidden: list[str] = []  # open hidden elements, innermost last
        self._pre = 0
        self._in_title = False
        self._title_parts: list[str] = []
        self._h1_parts: list[str] | None = None
        self.title: str | None = None
        self.first_h1: str | None = None

    def text(self) -> str:
        """The collected text, one line per block, before final clean-up."""
        lines = (line.strip(" \t") for line in "".join(self._out).split("\n"))
        return "\n".join(lines)

    def _flush(self) -> None:
        if self._pending and self._out:
            self._out.append("\n" * self._pending)
        self._pending = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden.append(tag)
            return
        if self._hidden:
            return
        if tag == "title":
            self._in_title = True
        elif tag == "br":
            self._flush()
            self._out.append("\n")
        elif tag in ("td", "th"):
            self._flush()
            self._out.append("\t")
        elif tag in _BREAKS:
            self._pending = max(self._pending, _BREAKS[tag])
            if tag == "pre":
                self._pre += 1
            elif tag == "h1" and self.first_h1 is None and self._h1_parts is None:
                self._h1_parts = []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # `<br/>` and friends: a start with no content; never opens a hidden element.
        if tag not in _HIDDEN:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            if tag in self._hidden:  # close it and anything left open inside it
                del self._hidden[len(self._hidden) - 1 - self._hidden[::-1].index(tag) :]
            return
        if self._hidden:
            return
        if tag == "title":
            self._in_title = False
            if self.title is None:
                self.title = " ".join("".join(self._title_parts).split()) or None
        elif tag in _BREAKS:
            self._pending = max(self._pending, _BREAKS[tag])
            if tag == "pre" and self._pre:
                self._pre -= 1
            elif tag == "h1" and self._h1_parts is not None:
                self.first_h1 = " ".join("".join(self._h1_parts).split()) or None
                self._h1_parts = None

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        if self._in_title:
            self._title_parts.append(data)
            return  # the title is metadata, not body text
        if self._h1_parts is not None:
            self._h1_parts.append(data)
        if not self._pre:
            data = _SPACES.sub(" ", data)
            if data == " " and self._pending:
                return  # whitespace between blocks is not text
        self._flush()
        self._out.append(data)
