"""A tenant file is checked before it is used, and the shipped demo tenant is what the demo needs.

Defends: a malformed tenant file is refused with a message naming the bad place in it (schema
errors and unresolvable names alike); the demo tenant validates and has the sites, users,
groups, documents, pages, permission cases and bad inputs that the demo and the tests rely on;
each demo question is answerable by keyword search for its asker and unreadable for the other.
"""

from __future__ import annotations

import copy
import math
import re
from collections import Counter
from typing import Any

import pytest
import yaml

from sandbox.loader import TenantFileError, build_tenant, resolve_path
from sandbox.tenant import Item, Tenant, load_tenant

MINIMAL: dict[str, Any] = {
    "tenant": {"name": "Mini", "hostname": "mini.sharepoint.com"},
    "users": [{"upn": "a@mini.example", "display_name": "A"}],
    "groups": [{"name": "Team", "kind": "security", "members": ["a@mini.example"]}],
    "sites": [
        {
            "path": "/sites/one",
            "display_name": "One",
            "libraries": [{"name": "Documents", "items": [{"file": "a.txt", "text": "hello"}]}],
        }
    ],
}


def _with(change: str, value: Any) -> dict[str, Any]:
    """MINIMAL with one value replaced, addressed like `sites.0.libraries.0.items.0`."""
    document = copy.deepcopy(MINIMAL)
    *parents, last = change.split(".")
    target: Any = document
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[int(last) if last.isdigit() else last] = value
    return document


@pytest.fixture(scope="module")
def demo() -> Tenant:
    return load_tenant("demo")


def test_minimal_tenant_loads() -> None:
    tenant = build_tenant(copy.deepcopy(MINIMAL))
    assert [item.name for item in tenant.items()] == ["a.txt"]


@pytest.mark.parametrize(
    ("change", "value", "expected"),
    [
        ("tenant.hostname", "Mini.example.com", r"\$\.tenant\.hostname: 'Mini\.example\.com' does not match"),
        ("users.0.upn", "not-an-upn", r"\$\.users\[0\]\.upn"),
        ("sites.0.libraries.0.items.0", {"file": "a.txt"}, r"\$\.sites\[0\]\.libraries\[0\]\.items\[0\]"),
        ("sites.0.libraries.0.items.0", {"file": "a.txt", "text": "x", "sample": "y"}, r"items\[0\]"),
        ("sites.0.libraries.0.permissions", [{"role": "read"}], r"\$\.sites\[0\]\.libraries\[0\]\.permissions\[0\]"),
        ("groups.0.kind", "distribution", r"\$\.groups\[0\]\.kind: 'distribution' is not one of"),
    ],
)
def test_schema_errors_name_the_bad_path(change: str, value: Any, expected: str) -> None:
    with pytest.raises(TenantFileError, match=expected):
        build_tenant(_with(change, value))


@pytest.mark.parametrize(
    ("change", "value", "expected"),
    [
        ("groups.0.members", ["nobody@mini.example"], r"\$\.groups\[0\]\.members\[0\]: 'nobody@mini\.example' is neither"),
        ("sites.0.libraries.0.permissions", [{"group": "Ghosts"}], r"permissions\[0\]: unknown group 'Ghosts'"),
        ("sites.0.libraries.0.items.0", {"file": "a.txt", "sample": "no-such-sample"}, r"items\[0\]\.sample: unknown sample"),
        ("sites.0.permissions", [{"site_group": 9}], r"\$\.sites\[0\]\.permissions\[0\]: .*no site group 9"),
    ],
)
def test_unresolvable_names_are_reported_with_their_path(change: str, value: Any, expected: str) -> None:
    with pytest.raises(TenantFileError, match=expected):
        build_tenant(_with(change, value))


def test_duplicate_names_in_a_folder_are_refused() -> None:
    items = [{"file": "a.txt", "text": "1"}, {"file": "A.TXT", "text": "2"}]
    with pytest.raises(TenantFileError, match=r"items\[1\].*already|items\[1\].*exists"):
        build_tenant(_with("sites.0.libraries.0.items", items))


def test_the_demo_file_validates_as_yaml_against_the_schema() -> None:
    document = yaml.safe_load(resolve_path("demo").read_text(encoding="utf-8"))
    build_tenant(document)  # raises on any schema or reference error


def test_demo_has_the_promised_directory(demo: Tenant) -> None:
    assert demo.hostname == "northwind.sharepoint.com"
    assert len(demo.users) >= 6
    assert sum(u.is_guest for u in demo.users) == 1
    assert len(demo.groups) >= 5
    assert {g.kind for g in demo.groups} == {"security", "m365"}
    assert any(g.member_group_ids for g in demo.groups), "one group must be nested in another"
    assert len(demo.sites) >= 3
    for site in demo.sites:
        assert sum(d.system for d in site.drives) == 1, "every site has one Site Pages library"


def test_demo_has_documents_in_every_format(demo: Tenant) -> None:
    documents = [i for i in demo.items() if i.kind == "file" and i.bad_input is None]
    assert len(documents) >= 30
    formats = Counter(i.name.rsplit(".", 1)[-1] for i in documents)
    assert set(formats) >= {"pdf", "docx", "pptx", "xlsx", "html", "md", "txt"}
    for item in documents:
        paragraphs = [p for p in (item.text or "").split("\n\n") if len(p) > 40]
        assert len(paragraphs) >= 3, f"{item.name} needs several paragraphs of real text"
    pages = [i for i in demo.items() if i.kind == "page"]
    assert len(pages) >= 5


def test_demo_has_a_multi_page_pdf_and_a_long_document(demo: Tenant) -> None:
    pdfs = [i for i in demo.items() if i.name.endswith(".pdf") and i.page_texts]
    multi = [i for i in pdfs if len(i.page_texts or []) >= 3]
    assert multi, "at least one PDF of three pages or more"
    assert all(len(set(i.page_texts or [])) == len(i.page_texts or []) for i in multi), "different text per page"
    longest = max(demo.items(), key=lambda i: len((i.text or "").split()))
    assert len((longest.text or "").split()) >= 3000


def test_demo_has_the_five_bad_inputs(demo: Tenant) -> None:
    bad = Counter(i.bad_input for i in demo.items() if i.bad_input)
    assert bad == {"corrupt": 1, "encrypted": 1, "empty": 1, "too_large": 1, "unsupported_format": 1}
    oversize = next(i for i in demo.items() if i.bad_input == "too_large")
    assert oversize.size > 100 * 2**20


def _item(demo: Tenant, name: str) -> Item:
    return demo.find_item(name)


def test_demo_permission_cases(demo: Tenant) -> None:
    def readers(name: str) -> set[str]:
        item = _item(demo, name)
        return {demo.user(u).upn.split("@")[0].split("_")[0] for u in demo.readers(item.drive_id, item.item_id)}

    assert readers("Salary Bands 2025.xlsx") == {"alice.nguyen"}  # HR-only folder
    assert readers("Q3 2025 Board Pack.pdf") == {"bruno.silva"}  # one group only
    assert readers("Relocation Agreement - Chen Wei.docx") == {"chen.wei"}  # a single user
    assert readers("Home.aspx") == {u.upn.split("@")[0].split("_")[0] for u in demo.users}  # guests too
    assert "pat.kim" not in readers("Code of Conduct.pdf")
    assert "pat.kim" in readers("Partner Integration Guide.md")
    assert "erik.johansson" in readers("Servo Motor Vendor Evaluation.xlsx")  # specific-people link
    assert readers("Press Kit.txt") == readers("About Northwind Robotics.md")  # anonymous link grants nobody


_STOP = set("a an and are as at be by for from how in is it of on or the to was what when where which who why with".split())


def _terms(text: str) -> list[str]:
    words = re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", text.lower())
    return [w.rstrip("s") if len(w) > 3 else w for w in words if w not in _STOP]


def test_demo_questions_are_found_for_one_user_and_hidden_from_another(demo: Tenant) -> None:
    questions = demo.demo_questions
    assert len(questions) >= 3
    assert len({q.visible_to for q in questions}) == len(questions), "different askers"
    documents = [i for i in demo.items() if i.text]
    frequency = Counter(t for d in documents for t in set(_terms(d.title + " " + d.text)))

    def score(question: str, item: Item) -> float:
        counts = Counter(_terms(item.title + " " + (item.text or "")))
        return sum(
            math.log(1 + counts[t]) * math.log(len(documents) / frequency[t]) for t in set(_terms(question)) if counts[t]
        )

    for question in questions:
        target = demo.find_item(question.document)
        assert demo.can_read(question.visible_to, target.drive_id, target.item_id)
        assert not demo.can_read(question.hidden_from, target.drive_id, target.item_id)
        visible = [d for d in documents if demo.can_read(question.visible_to, d.drive_id, d.item_id)]
        best = max(visible, key=lambda d: score(question.question, d))
        assert best.name == question.document, f"{question.question!r} finds {best.name}"


def test_the_command_line_validates_tenant_files(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from sandbox.__main__ import main

    assert main(["validate", "demo"]) == 0
    assert "demo: valid (4 sites" in capsys.readouterr().out
    broken = tmp_path / "broken.yaml"
    broken.write_text("tenant: {name: x, hostname: x.sharepoint.com}\nusers: []\n", encoding="utf-8")
    assert main(["validate", str(broken)]) == 2
    assert "broken.yaml: $: 'sites' is a required property" in capsys.readouterr().err
