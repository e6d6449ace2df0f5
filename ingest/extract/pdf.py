"""PDF -> one section per page, with its 1-based page number (pypdf)."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError

from ingest.errors import CorruptFile, EncryptedFile
from ingest.extract._common import clean_text, kind, require_text
from ingest.models import Extracted, Section

log = logging.getLogger(__name__)

# pypdf warns about every irregularity it repairs, sometimes quoting bytes of the file; keep
# that out of the logs unless an operator has configured the "pypdf" logger explicitly.
if logging.getLogger("pypdf").level == logging.NOTSET:
    logging.getLogger("pypdf").setLevel(logging.ERROR)


def extract_pdf(content: bytes) -> Extracted:
    """The text of each page of a PDF, in page order, `page` numbered from 1.

    An owner-password-only PDF (readable, restricted editing) is read. Raises EncryptedFile
    when a password is needed to open it, CorruptFile when it cannot be parsed, and
    EmptyFile when no page has extractable text (typically a scan without OCR). A page that
    fails on its own is skipped, so one damaged page does not cost the rest of the file.
    """
    try:
        reader = PdfReader(io.BytesIO(content), strict=False)
    except Exception as exc:  # pypdf raises many types on damaged input
        raise CorruptFile(f"damaged PDF ({kind(exc)})") from None
    if reader.is_encrypted:
        try:
            opened = reader.decrypt("")  # the empty user password opens owner-only PDFs
        except (DependencyError, NotImplementedError) as exc:
            raise EncryptedFile(f"PDF encrypted with an unsupported method ({kind(exc)})") from None
        except Exception as exc:
            raise CorruptFile(f"damaged PDF encryption dictionary ({kind(exc)})") from None
        if opened == PasswordType.NOT_DECRYPTED:
            raise EncryptedFile("password-protected PDF")
    try:
        pages = list(reader.pages)
    except FileNotDecryptedError:
        raise EncryptedFile("password-protected PDF") from None
    except Exception as exc:
        raise CorruptFile(f"damaged PDF page tree ({kind(exc)})") from None

    sections: list[Section] = []
    failed = 0
    with _cached_font_tables():
        for number, page in enumerate(pages, start=1):
            try:
                text = page.extract_text()
            except Exception as exc:
                failed += 1
                log.warning("skipping unreadable PDF page %d (%s)", number, kind(exc))
                continue
            sections.append(Section(text=clean_text(text or "", compatibility=True), page=number))
    if pages and failed == len(pages):
        raise CorruptFile("no PDF page could be read")
    return require_text(sections, _title(reader), "no extractable text (scanned?)")


def _title(reader: PdfReader) -> str | None:
    """The document-information title, if the file has a usable one."""
    try:
        metadata = reader.metadata  # parsed on every access
        title = metadata.title if metadata else None
    except Exception:  # a broken info dictionary costs the title, not the document
        return None
    return str(title) if title else None


# pypdf 7.1 builds a 256-entry cp1252 table for the placeholder font of every page's text
# extractor (py-pdf/pypdf#3905), decoding byte by byte: ~0.45 ms a page, 6-10% of extracting a
# typical page. While spindex extracts, that builder is swapped for one that builds each table
# once per process and hands out copies, so no caller can change another's. The output is the
# same; other users of pypdf in the process see it as it is once no extraction is running.
_tables: dict[str, dict[int, str]] = {}
_swap_lock = threading.Lock()
_swap_users = 0


def _copy_of_table(encoding: str) -> dict[int, str]:
    from pypdf import _codecs

    table = _tables.get(encoding)
    if table is None:
        table = _tables[encoding] = _codecs.encoding_dict_from_named_encoding(encoding)
    return dict(table)


def _table_builder_slot() -> tuple[object, str, Callable[[str], dict[int, str]]] | None:
    """Where the page extractor looks up its table builder, if it is pypdf's own, pure one."""
    try:
        from pypdf import _codecs
        from pypdf._text_extraction import _text_extractor
    except ImportError:
        return None
    name = "encoding_dict_from_named_encoding"
    original = getattr(_codecs, name, None)
    if original is None or getattr(_text_extractor, name, None) not in (original, _copy_of_table):
        return None
    return _text_extractor, name, original


@contextmanager
def _cached_font_tables() -> Iterator[None]:
    """pypdf with its per-page table built once, for as long as any thread extracts."""
    global _swap_users
    slot = _table_builder_slot()
    if slot is None:  # another pypdf: leave it alone
        yield
        return
    module, name, original = slot
    with _swap_lock:
        _swap_users += 1
        setattr(module, name, _copy_of_table)
    try:
        yield
    finally:
        with _swap_lock:
            _swap_users -= 1
            if not _swap_users:
                setattr(module, name, original)
