"""File content in the sandbox: bytes held in memory, or huge bytes generated on demand.

An oversized file must report its size without ever being held in memory, so content is a
small interface (`size`, `sha256`, `read`, `iter_bytes`) with two implementations.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Protocol

# A fixed table rather than `mimetypes`, whose answers depend on the machine's /etc/mime.types.
MIME_TYPES: dict[str, str] = {
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".html": "text/html",
    ".htm": "text/html",
    ".aspx": "text/html",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
    ".csv": "text/csv",
    ".json": "application/json",
    ".zip": "application/zip",
    ".exe": "application/x-msdownload",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".mp4": "video/mp4",
}
DEFAULT_MIME = "application/octet-stream"

# The formats spindex extracts text from; anything else is reported as unsupported.
SUPPORTED_EXTENSIONS = frozenset(
    {".pdf", ".docx", ".pptx", ".xlsx", ".html", ".htm", ".md", ".markdown", ".txt", ".aspx"}
)
# The default download limit of spindex (100 MiB); bigger files are reported as too large.
DEFAULT_MAX_BYTES = 100 * 2**20

_LAZY_BLOCK = 64 * 1024


def extension(name: str) -> str:
    """The lower-case extension of a file name, with its dot ("" when there is none)."""
    return PurePosixPath(name).suffix.lower()


def mime_type_for(name: str) -> str:
    """The MIME type SharePoint would report for a file of this name."""
    return MIME_TYPES.get(extension(name), DEFAULT_MIME)


class Content(Protocol):
    """The bytes of one file version."""

    @property
    def size(self) -> int:
        """The length in bytes."""
        ...

    @property
    def sha256(self) -> str:
        """A hex digest that changes exactly when the bytes change."""
        ...

    def read(self, start: int = 0, end: int | None = None) -> bytes:
        """Bytes `start` up to (not including) `end`."""
        ...

    def iter_bytes(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The same bytes as `read`, in chunks, so that a huge file streams."""
        ...


@dataclass(frozen=True, slots=True)
class BytesContent:
    """Content held in memory."""

    data: bytes

    @property
    def size(self) -> int:
        """The length in bytes."""
        return len(self.data)

    @property
    def sha256(self) -> str:
        """The digest of the bytes."""
        return hashlib.sha256(self.data).hexdigest()

    def read(self, start: int = 0, end: int | None = None) -> bytes:
        """Bytes `start` up to `end`."""
        return self.data[start:end]

    def iter_bytes(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes in 1 MiB chunks."""
        end = self.size if end is None else min(end, self.size)
        for offset in range(start, end, 2**20):
            yield self.data[offset : min(offset + 2**20, end)]


@dataclass(frozen=True, slots=True)
class LazyContent:
    """`size` deterministic bytes made on demand from `seed`; never held in memory as a whole.

    The first bytes carry `header`, so that a lazily made PDF still starts like a PDF.
    """

    size_bytes: int
    seed: str
    header: bytes = b""

    @property
    def size(self) -> int:
        """The reported length in bytes."""
        return self.size_bytes

    @property
    def sha256(self) -> str:
        """A digest of the recipe, which fixes the bytes (hashing 100+ MiB would be wasteful)."""
        return hashlib.sha256(f"lazy:{self.size_bytes}:{self.seed}".encode() + self.header).hexdigest()

    def _block(self) -> bytes:
        unit = hashlib.sha256(self.seed.encode()).digest()
        return (unit * (_LAZY_BLOCK // len(unit) + 1))[:_LAZY_BLOCK]

    def read(self, start: int = 0, end: int | None = None) -> bytes:
        """Bytes `start` up to `end` (meant for small ranges)."""
        return b"".join(self.iter_bytes(start, end))

    def iter_bytes(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes in 64 KiB chunks; the filler repeats one block after the header."""
        end = self.size_bytes if end is None else min(end, self.size_bytes)
        block = self._block()
        header = self.header[: self.size_bytes]
        position = start
        while position < end:
            if position < len(header):
                chunk = header[position : min(end, len(header))]
            else:
                offset = (position - len(header)) % _LAZY_BLOCK
                chunk = block[offset : offset + min(_LAZY_BLOCK - offset, end - position)]
            position += len(chunk)
            yield chunk
