"""The sample markup: a small Markdown-like source format for sample documents.

    # Title                       first line
    ## Heading / ### Subheading
    Paragraph lines (joined until a blank line)
    - bullet
    | cell | cell |               table rows (a `|---|` row is ignored)
    <<<page>>>                    page break (PDF only)
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Block:
    """One unit of a sample source: heading, paragraph, bullet, table or page break."""

    kind: str  # "heading" | "para" | "bullet" | "table" | "page"
    text: str = ""
    level: int = 2
    rows: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True, slots=True)
class Source:
    """A parsed sample source: a title and its blocks."""

    title: str
    blocks: tuple[Block, ...]

    def plain_text(self) -> str:
        """The text as plain lines: what any extractor should find, in reading order."""
        parts = [self.title]
        for block in self.blocks:
            if block.kind == "table":
                parts.append("\n".join("\t".join(row) for row in block.rows))
            elif block.kind != "page":
                parts.append(block.text)
        return "\n\n".join(p for p in parts if p)


def parse_source(source: str) -> Source:
    """Parse the sample markup described in the module docstring."""
    title = ""
    blocks: list[Block] = []
    paragraph: list[str] = []
    table: list[tuple[str, ...]] = []

    def flush() -> None:
        if paragraph:
            blocks.append(Block("para", " ".join(paragraph)))
            paragraph.clear()
        if table:
            blocks.append(Block("table", rows=tuple(table)))
            table.clear()

    for raw in source.splitlines():
        line = raw.strip()
        if not line:
            flush()
        elif line == "<<<page>>>":
            flush()
            blocks.append(Block("page"))
        elif line.startswith("#"):
            flush()
            level = len(line) - len(line.lstrip("#"))
            text = line[level:].strip()
            if level == 1 and not title:
                title = text
            else:
                blocks.append(Block("heading", text, level=max(level, 2)))
        elif line.startswith("|"):
            if paragraph:
                flush()
            cells = tuple(c.strip() for c in line.strip("|").split("|"))
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                table.append(cells)
        elif line.startswith("- "):
            flush()
            blocks.append(Block("bullet", line[2:].strip()))
        else:
            if table:
                flush()
            paragraph.append(line)
    flush()
    return Source(title, tuple(blocks))
