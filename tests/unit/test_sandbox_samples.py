"""Sample files are real, readable documents whose bytes never change, and bad files are bad.

Defends: every generated sample is byte-identical across processes (different time zones and
hash seeds), so content hashes and cTags are stable; PDFs give back exactly their per-page
text through pypdf; DOCX, PPTX and XLSX open with their libraries and hold the sample's text;
the corrupt PDF cannot be parsed, the encrypted one needs a password, the empty one is empty,
the oversized one reports its size but is only generated while it is read.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.content import LazyContent
from sandbox.tenant import Tenant, load_tenant

REPO = Path(__file__).resolve().parents[2]
_DIGEST_SCRIPT = """
import hashlib
from sandbox.tenant import load_tenant
tenant = load_tenant("demo")
for item in tenant.items():
    content = tenant.node(item.drive_id, item.item_id).content
    digest = content.sha256 if item.bad_input == "too_large" else hashlib.sha256(content.read()).hexdigest()
    print(item.drive_id, item.name, digest)
"""


@pytest.fixture(scope="module")
def demo() -> Tenant:
    return load_tenant("demo")


def _content(tenant: Tenant, name: str) -> bytes:
    item = tenant.find_item(name)
    return tenant.node(item.drive_id, item.item_id).content.read()  # type: ignore[union-attr]


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_sample_bytes_are_identical_across_processes() -> None:
    runs = []
    for zone, seed in (("UTC", "1"), ("Asia/Kolkata", "2")):
        env = {**os.environ, "TZ": zone, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        runs.append(subprocess.Popen([sys.executable, "-c", _DIGEST_SCRIPT], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True))
    first, second = (run.communicate(timeout=120)[0] for run in runs)
    assert all(run.returncode == 0 for run in runs)
    assert first.count("\n") >= 40
    assert first == second


def test_pdfs_give_back_their_text_page_by_page(demo: Tenant) -> None:
    from pypdf import PdfReader

    pdfs = [i for i in demo.items() if i.name.endswith(".pdf") and i.bad_input is None]
    assert len(pdfs) >= 5
    for item in pdfs:
        reader = PdfReader(io.BytesIO(_content(demo, item.name)))
        extracted = [_squash(page.extract_text()) for page in reader.pages]
        assert extracted == [_squash(t) for t in item.page_texts or []], item.name


def test_office_files_open_and_hold_the_sample_text(demo: Tenant) -> None:
    import docx
    import openpyxl
    from pptx import Presentation

    word = docx.Document(io.BytesIO(_content(demo, "Leave and Holiday Policy.docx")))
    assert "Birth parents receive 20 weeks of parental leave at full pay." in "\n".join(p.text for p in word.paragraphs)
    deck = Presentation(io.BytesIO(_content(demo, "Product Roadmap 2026.pptx")))
    slide_text = " ".join(s.text_frame.text for slide in deck.slides for s in slide.shapes if s.has_text_frame)
    assert "The RX-350 arm" in slide_text
    book = openpyxl.load_workbook(io.BytesIO(_content(demo, "Salary Bands 2025.xlsx")))
    rows = [row for sheet in book for row in sheet.iter_rows(values_only=True)]
    assert ("Senior Robotics Engineer", "E3", 70000, 80000, 90000) in rows


def test_text_formats_hold_the_text_they_claim(demo: Tenant) -> None:
    assert _content(demo, "Remote Work Policy.md").decode().startswith("# Remote Work Policy\n")
    assert _content(demo, "New Starter Checklist.txt").decode().startswith("New Starter Checklist\n")
    page = demo.find_item("Corporate Card FAQ.html")
    assert "<h2>What is the card limit?</h2>" in _content(demo, page.name).decode()
    assert "The standard monthly limit is 5,000 euros." in (page.text or "")


def test_bad_inputs_are_bad_in_the_promised_way(demo: Tenant) -> None:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    with pytest.raises((PdfReadError, ValueError)):
        PdfReader(io.BytesIO(_content(demo, "Legacy Test Rig Manual.pdf"))).pages[0].extract_text()
    encrypted = PdfReader(io.BytesIO(_content(demo, "Patent Draft - Adaptive Gripper.pdf")))
    assert encrypted.is_encrypted and not encrypted.decrypt("")
    assert _content(demo, "Standup Notes.txt") == b""
    binary = demo.find_item("controller-firmware-4.2.bin")
    assert binary.bad_input == "unsupported_format" and binary.size == 4096


def test_the_oversized_file_is_generated_lazily(demo: Tenant) -> None:
    item = demo.find_item("Factory Floor Lidar Survey.pdf")
    content = demo.node(item.drive_id, item.item_id).content
    assert isinstance(content, LazyContent)
    assert content.size == item.size == 157286400
    assert content.read(0, 8) == b"%PDF-1.7"
    tail = content.read(item.size - 10)
    assert len(tail) == 10 and content.read(item.size - 10) == tail
    chunks = content.iter_bytes(0, 3 * 2**20)
    assert max(len(next(chunks)) for _ in range(3)) <= 2**17  # streamed in small chunks
