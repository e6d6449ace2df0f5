"""The fake Azure AI Search service behaves like the REST surface spindex relies on.

Plain HTTP (urllib), no SDK, so these tests pin the fake itself.

Invariants defended:
- Credentials (api-key or bearer) and api-version are checked; both URL forms are routed.
- Filters: exactly the forms spindex emits are accepted (including every shape
  `SecurityFilter.to_odata()` renders), with OData semantics; any other form is a 400.
- Fields marked `retrievable: false` are never returned, and cannot be selected.
- Indexing: per-document results (207 on partial failure, 404 for merging a missing document),
  more than 1,000 actions is a 400, more than 16 MB a 413; injected failures and throttling
  behave as configured.
- Aliases resolve for documents operations; an alias target cannot be deleted.
- Search: term matching, exact cosine vectors, RRF fusion; orderby only on sortable fields;
  skip bounded.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from ingest.index.schema import load_index_definition
from ingest.query import security_filter
from tests.fakes.search_odata import FilterError, compile_filter
from tests.fakes.search_server import API_VERSION, FakeSearchService

KEY = "k1"
G1 = "11111111-1111-1111-1111-111111111111"
G2 = "22222222-2222-2222-2222-222222222222"
U1 = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"
DIMS = 4
FIELDS = {f["name"]: f for f in load_index_definition("docs-v1", DIMS)["fields"]}


def request(fake: FakeSearchService, method: str, path: str, body: object = None, *,
            headers: dict[str, str] | None = None, version: str | None = API_VERSION,
            raw: bytes | None = None) -> tuple[int, Any, dict[str, str]]:
    query = f"?api-version={version}" if version else ""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    sent = {"api-key": KEY, "Content-Type": "application/json", **(headers or {})}
    req = urllib.request.Request(fake.endpoint + path + query, data=data, method=method,
                                 headers={k: v for k, v in sent.items() if v})
    try:
        with urllib.request.urlopen(req) as response:
            status, text, got = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        status, text, got = exc.code, exc.read(), dict(exc.headers)
    try:
        return status, json.loads(text) if text else None, got
    except ValueError:
        return status, text.decode(), got


def doc(key: str, *, content: str = "alpha", vector: list[float] | None = None,
        groups: list[str] | None = None, users: list[str] | None = None,
        parent: str = "p1", drive: str = "d1") -> dict[str, Any]:
    return {"@search.action": "upload", "id": key, "parent_key": parent, "drive_id": drive,
            "content": content, "title": "t", "chunk_no": 0,
            "content_vector": vector or [1.0, 0.0, 0.0, 0.0],
            "group_ids": groups or [], "user_ids": users or []}


@pytest.fixture
def fake() -> Iterator[FakeSearchService]:
    with FakeSearchService(api_keys=[KEY], tokens=["tok"]) as service:
        status, _, _ = request(service, "PUT", "/indexes('docs-v1')",
                               load_index_definition("docs-v1", DIMS))
        assert status == 201
        yield service


def search(fake: FakeSearchService, body: dict[str, Any], index: str = "docs-v1") -> Any:
    status, answer, _ = request(fake, "POST", f"/indexes('{index}')/docs/search.post.search",
                                body)
    assert status == 200, answer
    return answer


def test_credentials_and_api_version_are_checked(fake: FakeSearchService) -> None:
    assert request(fake, "GET", "/indexes", headers={"api-key": "wrong"})[0] == 403
    assert request(fake, "GET", "/indexes", headers={"api-key": ""})[0] == 401
    assert request(fake, "GET", "/indexes", headers={"api-key": "",
                                                     "Authorization": "Bearer tok"})[0] == 200
    assert request(fake, "GET", "/indexes", version=None)[0] == 400
    assert request(fake, "GET", "/indexes", version="2024-07-01")[0] == 400


def test_both_url_forms_reach_the_same_index(fake: FakeSearchService) -> None:
    assert request(fake, "POST", "/indexes/docs-v1/docs/index", {"value": [doc("a")]})[0] == 200
    assert request(fake, "POST", "/indexes('docs-v1')/docs/search.index",
                   {"value": [doc("b")]})[0] == 200
    assert request(fake, "GET", "/indexes/docs-v1/docs/$count")[1] == 2
    assert search(fake, {"select": "id"}, index="docs-v1")["value"][1]["id"] == "b"
    status, answer, _ = request(fake, "POST", "/indexes/docs-v1/docs/search", {"select": "id"})
    assert status == 200 and len(answer["value"]) == 2
    assert fake.definitions["docs-v1"] == load_index_definition("docs-v1", DIMS)


@pytest.mark.parametrize("reader", [
    security_filter(None, [G1]), security_filter(U1, []), security_filter(U1, [G1, G2]),
    security_filter(None, []), security_filter(None, [G2], principal_values=["everyone"])])
def test_every_security_filter_form_is_accepted_with_its_semantics(fake: FakeSearchService,
                                                                   reader: Any) -> None:
    acls = {"g1": ([G1], []), "g2": ([G2], []), "u1": ([], [U1]), "none": ([], []),
            "all": (["everyone"], [])}
    request(fake, "POST", "/indexes('docs-v1')/docs/search.index", {"value": [
        doc(k, groups=g, users=u) for k, (g, u) in acls.items()]})
    got = {r["id"] for r in search(fake, {"filter": reader.to_odata(), "select": "id"})["value"]}
    assert got == {k for k, (g, u) in acls.items() if reader.permits(g, u)}


@pytest.mark.parametrize("text", [
    "parent_key eq 'p1'", "drive_id eq 'it''s'", "search.in(parent_key, 'p1,p2', ',')",
    "search.in(id, 'a|b', '|')", "(drive_id eq 'd1') and parent_key ge 'a' and parent_key lt 'ag'",
    "false", "chunk_no eq 0", "group_ids/any(g: g eq 'x') or user_ids/any(u: u eq 'y')",
    "drive_id eq 'd1' and ancestor_ids/any(a: a eq 'folder')"])
def test_the_forms_spindex_emits_compile(text: str) -> None:
    compile_filter(text, FIELDS)


@pytest.mark.parametrize("text", [
    "search.in(group_ids, 'a', ',')",           # a collection needs a lambda
    "user_ids eq 'x'", "content eq 'x'",         # collection; not filterable
    "unknown eq 'x'", "parent_key eq p1", "parent_key eq 'p1' or",
    "not parent_key eq 'p1'", "search.in(parent_key, 'a')", "group_ids/all(g: g eq 'x')",
    "group_ids/any(g: h eq 'x')", "chunk_no eq '0'", "parent_key eq 'p1'; drop",
    "group_ids/any(g: search.in(g, 'a', ''))", "parent_key eq 'unterminated"])
def test_other_forms_are_refused(fake: FakeSearchService, text: str) -> None:
    with pytest.raises(FilterError):
        compile_filter(text, FIELDS)
    status, answer, _ = request(fake, "POST", "/indexes('docs-v1')/docs/search.post.search",
                                {"filter": text})
    assert status == 400, answer


def test_non_retrievable_fields_are_never_returned(fake: FakeSearchService) -> None:
    request(fake, "POST", "/indexes('docs-v1')/docs/search.index",
            {"value": [doc("a", groups=[G1], users=[U1])]})
    (hit,) = search(fake, {})["value"]
    assert "group_ids" not in hit and "user_ids" not in hit and hit["content"] == "alpha"
    for select in ("id,group_ids", "user_ids", "nope"):
        assert request(fake, "POST", "/indexes('docs-v1')/docs/search.post.search",
                       {"select": select})[0] == 400


def test_indexing_answers_per_document(fake: FakeSearchService) -> None:
    status, answer, _ = request(fake, "POST", "/indexes('docs-v1')/docs/search.index", {"value": [
        doc("a"), {"@search.action": "merge", "id": "missing", "title": "x"},
        {"@search.action": "delete", "id": "never-there"}, doc("_bad")]})
    assert status == 207
    assert [(r["key"], r["statusCode"], r["status"]) for r in answer["value"]] == [
        ("a", 201, True), ("missing", 404, False), ("never-there", 200, True),
        ("_bad", 400, False)]
    status, answer, _ = request(fake, "POST", "/indexes('docs-v1')/docs/search.index",
                                {"value": [doc("a", content="beta"),
                                           {"@search.action": "merge", "id": "a", "title": "T2"}]})
    assert status == 200 and [r["statusCode"] for r in answer["value"]] == [200, 200]
    (hit,) = search(fake, {"select": "content,title"})["value"]
    assert (hit["content"], hit["title"]) == ("beta", "T2")


def test_indexing_limits_and_schema_violations(fake: FakeSearchService) -> None:
    too_many = {"value": [{"@search.action": "delete", "id": f"k{i}"} for i in range(1001)]}
    assert request(fake, "POST", "/indexes('docs-v1')/docs/search.index", too_many)[0] == 400
    fake.max_bytes = 1000
    assert request(fake, "POST", "/indexes('docs-v1')/docs/search.index",
                   {"value": [doc("a", content="x" * 1000)]})[0] == 413
    fake.max_bytes = 16 * 2**20
    for bad in ({"nope": 1}, {"content_vector": [1.0]}, {"chunk_no": "0"},
                {"group_ids": "g"}, {"@search.action": "replace"}):
        status, _, _ = request(fake, "POST", "/indexes('docs-v1')/docs/search.index",
                               {"value": [{**doc("a"), **bad}]})
        assert status == 400, bad
    assert request(fake, "GET", "/indexes('docs-v1')/docs/$count")[1] == 0
    assert [r.action_count for r in fake.index_requests()][:1] == [1001]


def test_injected_failures_and_throttling(fake: FakeSearchService) -> None:
    fake.inject_207 = {"a": (503, 1), "b": 409}
    batch = {"value": [doc("a"), doc("b"), doc("c")]}
    for expected in ([503, 409, 201], [201, 409, 200]):
        _, answer, _ = request(fake, "POST", "/indexes('docs-v1')/docs/search.index", batch)
        assert [r["statusCode"] for r in answer["value"]] == expected
    fake.inject_207 = lambda key: 422 if key == "c" else None
    _, answer, _ = request(fake, "POST", "/indexes('docs-v1')/docs/search.index", batch)
    assert [r["statusCode"] for r in answer["value"]] == [200, 201, 422]  # b is new
    fake.throttle_next, fake.throttle_status, fake.retry_after = 1, 503, "3"
    status, _, headers = request(fake, "POST", "/indexes('docs-v1')/docs/search.index", batch)
    assert status == 503 and headers["Retry-After"] == "3"
    assert search(fake, {"select": "id"})["value"]  # searches are not throttled by default


def test_aliases_resolve_and_protect_their_target(fake: FakeSearchService) -> None:
    alias = {"name": "docs", "indexes": ["docs-v1"]}
    assert request(fake, "PUT", "/aliases('docs')", alias)[0] == 201
    assert request(fake, "PUT", "/aliases('docs')", alias)[0] == 200
    assert request(fake, "PUT", "/aliases('x')", {"name": "x", "indexes": ["nope"]})[0] == 400
    assert request(fake, "POST", "/indexes('docs')/docs/search.index",
                   {"value": [doc("a")]})[0] == 200
    assert search(fake, {"select": "id"}, index="docs")["value"] == [
        {"@search.score": 1.0, "id": "a"}]
    assert request(fake, "GET", "/indexes('docs')")[1]["name"] == "docs-v1"
    assert request(fake, "GET", "/aliases")[1]["value"][0]["indexes"] == ["docs-v1"]
    assert request(fake, "DELETE", "/indexes('docs-v1')")[0] == 400
    assert request(fake, "DELETE", "/aliases('docs')")[0] == 204
    assert request(fake, "GET", "/aliases('docs')")[0] == 404
    assert request(fake, "DELETE", "/indexes('docs-v1')")[0] == 204
    assert request(fake, "GET", "/indexes('docs-v1')")[0] == 404


def test_index_creation_conditions(fake: FakeSearchService) -> None:
    definition = load_index_definition("docs-v1", DIMS)
    assert request(fake, "PUT", "/indexes('docs-v1')", definition,
                   headers={"If-None-Match": "*"})[0] == 412
    assert request(fake, "POST", "/indexes", definition)[0] == 409
    broken = {**definition, "name": "docs-v2", "fields": definition["fields"][1:]}  # no key
    assert request(fake, "PUT", "/indexes('docs-v2')", broken)[0] == 400
    assert [i["name"] for i in request(fake, "GET", "/indexes")[1]["value"]] == ["docs-v1"]


def test_search_ranks_text_vectors_and_fuses_them(fake: FakeSearchService) -> None:
    request(fake, "POST", "/indexes('docs-v1')/docs/search.index", {"value": [
        doc("a", content="budget report", vector=[1.0, 0.0, 0.0, 0.0]),
        doc("b", content="budget budget plan", vector=[0.0, 1.0, 0.0, 0.0]),
        doc("c", content="holiday", vector=[0.9, 0.1, 0.0, 0.0])]})
    text = search(fake, {"search": "Budget", "select": "id", "count": True})
    assert [r["id"] for r in text["value"]] == ["b", "a"] and text["@odata.count"] == 2
    vector = search(fake, {"select": "id", "vectorQueries": [
        {"kind": "vector", "vector": [1.0, 0.0, 0.0, 0.0], "k": 2, "fields": "content_vector"}]})
    assert [r["id"] for r in vector["value"]] == ["a", "c"]
    assert vector["value"][0]["@search.score"] == pytest.approx(1.0)
    hybrid = search(fake, {"search": "budget", "select": "id", "vectorQueries": [
        {"kind": "vector", "vector": [1.0, 0.0, 0.0, 0.0], "k": 3, "fields": "content_vector"}]})
    assert [r["id"] for r in hybrid["value"]] == ["a", "b", "c"]  # a: 1st + 2nd beats b: 1st + 3rd
    assert hybrid["value"][0]["@search.score"] == pytest.approx(1 / 61 + 1 / 62)
    assert request(fake, "POST", "/indexes('docs-v1')/docs/search.post.search",
                   {"vectorQueries": [{"kind": "vector", "vector": [1.0], "k": 1,
                                       "fields": "content_vector"}]})[0] == 400


def test_paging_ordering_and_skip_limit(fake: FakeSearchService) -> None:
    request(fake, "POST", "/indexes('docs-v1')/docs/search.index",
            {"value": [{**doc(f"k{i:02d}"), "chunk_no": 9 - i} for i in range(10)]})
    page = search(fake, {"select": "id", "top": 3, "skip": 3, "orderby": "chunk_no desc"})
    assert [r["id"] for r in page["value"]] == ["k03", "k04", "k05"]
    assert [r["id"] for r in search(fake, {"select": "id", "top": 0, "count": True})["value"]] == []
    for bad in ({"orderby": "id"}, {"orderby": "content asc"}, {"skip": 100_001},
                {"top": -1}, {"facets": ["x"]}):
        assert request(fake, "POST", "/indexes('docs-v1')/docs/search.post.search",
                       bad)[0] == 400, bad
    stats = request(fake, "GET", "/indexes('docs-v1')/search.stats")[1]
    assert stats["documentCount"] == 10
