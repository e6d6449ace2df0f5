"""Every kind of bad input is reported as its own BadInput, with a stable reason and no content.

Invariants defended:
- unsupported types raise UnsupportedFormat (reason `unsupported_format`) naming the type;
- zero bytes, whitespace-only text and text-free documents (a scanned PDF) raise EmptyFile
  (`empty`) with a message saying which;
- password-protected PDFs and Office files raise EncryptedFile (`encrypted`);
- damaged or mislabelled files raise CorruptFile (`corrupt`), and a zip that would inflate
  past the guard raises TooLarge (`too_large`);
- no message quotes the file's bytes (a report line must not leak what a document says).
"""

from __future__ import annotations

import io
import zipfile

import pytest

from ingest.errors import BadInput, CorruptFile, EmptyFile, EncryptedFile, TooLarge, UnsupportedFormat
from ingest.extract import extract, office
from tests.unit.test_extract_formats import encrypt_pdf, make_docx, make_pdf, make_xlsx

OLE = bytes.fromhex("D0CF11E0A1B11AE1") + b"\x00" * 504
SECRET = "TOPSECRET-payload"


def _raise(name: str, content: bytes, mime: str | None = None) -> BadInput:
    with pytest.raises(BadInput) as caught:
        extract(name, mime, content)
    return caught.value


def test_unsupported_type_names_the_type() -> None:
    error = _raise("photo.png", b"\x89PNG....", "image/png")
    assert isinstance(error, UnsupportedFormat) and error.reason == "unsupported_format"
    assert "'.png'" in str(error) and "image/png" in str(error)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.pdf", b"", "zero-byte file"),
        ("a.txt", b" \n\t \r\n", "whitespace-only text"),
        ("a.md", b"", "zero-byte file"),
        ("scan.pdf", make_pdf(["", ""]), "no extractable text (scanned?)"),
        ("a.html", b"<html><script>var x = 1</script><p> </p></html>", "no visible text in HTML"),
        ("a.xlsx", None, "no values in Excel workbook"),
    ],
)
def test_empty_input_is_empty_with_its_cause(name: str, content: bytes | None, message: str) -> None:
    if content is None:  # a workbook whose only sheet is empty
        import openpyxl

        out = io.BytesIO()
        openpyxl.Workbook().save(out)
        content = out.getvalue()
    error = _raise(name, content)
    assert isinstance(error, EmptyFile) and error.reason == "empty"
    assert str(error) == message


def test_password_protected_pdf_is_encrypted() -> None:
    error = _raise("locked.pdf", encrypt_pdf(make_pdf([SECRET]), user_password="pw"))
    assert isinstance(error, EncryptedFile) and error.reason == "encrypted"


@pytest.mark.parametrize("name", ["locked.docx", "locked.xlsx", "locked.pptx"])
def test_password_protected_office_file_is_encrypted(name: str) -> None:
    # Office saves a protected file as an OLE compound file holding an EncryptedPackage stream.
    content = OLE + "EncryptedPackage".encode("utf-16-le") + b"\x00" * 64
    error = _raise(name, content)
    assert isinstance(error, EncryptedFile) and error.reason == "encrypted"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("broken.pdf", make_pdf([SECRET])[:180]),  # truncated
        ("notpdf.pdf", SECRET.encode()),
        ("legacy.docx", OLE),  # a .doc renamed to .docx
        ("garbage.docx", b"PK\x03\x04" + SECRET.encode()),
        ("plain.xlsx", SECRET.encode()),
        ("wrong.pptx", make_docx()),  # a valid zip, but a Word package
        ("wrong.docx", make_xlsx()),
        ("binary.txt", b"\x00\x01" + SECRET.encode()),
    ],
)
def test_damaged_or_mislabelled_file_is_corrupt_without_quoting_it(name: str, content: bytes) -> None:
    error = _raise(name, content)
    assert isinstance(error, CorruptFile) and error.reason == "corrupt"
    assert SECRET not in str(error) and "\\x" not in str(error)
    assert len(str(error)) < 120


def test_zip_without_content_types_is_corrupt() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as package:
        package.writestr("word/document.xml", "<w:document/>")
    error = _raise("odd.docx", out.getvalue())
    assert isinstance(error, CorruptFile) and "Content_Types" in str(error)


def test_zip_bomb_is_refused_before_inflating(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(office, "MAX_UNZIPPED_BYTES", 1024)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as package:
        package.writestr("[Content_Types].xml", "<Types/>")
        package.writestr("word/document.xml", "0" * 100_000)
    error = _raise("bomb.docx", out.getvalue())
    assert isinstance(error, TooLarge) and error.reason == "too_large"


def test_bad_input_errors_survive_pickling() -> None:
    import pickle

    error = _raise("a.pdf", b"")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is EmptyFile and copy.reason == "empty" and str(copy) == "zero-byte file"
