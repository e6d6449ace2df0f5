"""PDF -> one section per page, with its 1-based page number (pypdf)."""

from __future__ import annotations

import io
import logging

from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError

from ingest.errors import CorruptFile, EncryptedFile
from ingest.extract._common import clean_text, kind, require_text
from ingest.extract.pypdf_speedups import faster_pypdf
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
    with faster_pypdf():
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
