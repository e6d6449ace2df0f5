"""Local hybrid search finds the right chunks and never shows a reader what they may not see.

Invariants defended:
- A chunk that matches the text (or is nearest the vector, or both) ranks first; fusion is
  reciprocal rank fusion; ties resolve deterministically.
- Security trimming is exact, for the text leg, the vector leg and both: for random documents
  with random group/user ids and random filters, a search that every document matches returns
  exactly the documents whose group_ids meet the filter's groups or whose user_ids hold the
  filter's user. Empty security fields match nobody; an empty filter matches nothing.
- Any query text at all (FTS5 operators, quotes, NUL, column filters, huge strings) is a plain
  query: it never raises and never widens what the filter allows.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.index.base import IndexContractError
from ingest.index.local import LocalIndexCatalog, LocalIndexStore
from ingest.index.local_search import (
    MAX_QUERY_TERMS,
    RRF_K,
    ascii_token,
    fts_query,
    is_floor_weighted,
    rrf,
)
from ingest.models import IndexDoc, ItemRef, chunk_key, text_hash
from ingest.query import EVERYONE, SecurityFilter, security_filter

DIMS = 8
G = [f"{i:08x}-0000-4000-8000-{i:012x}" for i in range(1, 7)]
U = [f"{i:08x}-1111-4111-8111-{i:012x}" for i in range(1, 5)]


def vector_for(text: str) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    return np.random.default_rng(seed).standard_normal(DIMS).tolist()


def make_doc(n: int, content: str, *, groups: list[str] | tuple[str, ...] = (G[0],),
             users: list[str] | tuple[str, ...] = (), title: str = "Untitled",
             vector: list[float] | None = None) -> IndexDoc:
    item = ItemRef("drive", f"item-{n}")
    return IndexDoc(
        id=chunk_key(item.parent_key, 0), parent_key=item.parent_key, chunk_no=0, chunk_count=1,
        content=content, content_vector=vector or vector_for(content),
        content_hash=text_hash(content), embedding_model="offline-8", title=title,
        url=f"https://contoso.example/{n}", path=f"/Docs/{n}", site_id="site", site_name="Site",
        drive_id="drive", item_id=item.item_id, source_kind="file", content_type="text/plain",
        last_modified="2026-03-04T10:00:00Z", page_start=3, page_end=4, content_tag="c",
        acl_hash="a", group_ids=list(groups), user_ids=list(users))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalIndexStore]:
    created = await LocalIndexCatalog(tmp_path).create_index("search-v1", DIMS)
    yield created
    await created.close()


async def test_text_match_ranks_first(store: LocalIndexStore) -> None:
    await store.upsert([
        make_doc(1, "quarterly budget review for the finance team"),
        make_doc(2, "holiday rota and parking rules"),
        make_doc(3, "the finance team sits on floor three"),
    ])
    hits = await store.search("budget", None, security=None)
    assert [h.key for h in hits] == [make_doc(1, "").id]
    hits = await store.search("finance budget", None, security=None)
    assert hits[0].key == make_doc(1, "").id and len(hits) == 2
    assert hits[0].score == pytest.approx(1 / (RRF_K + 1))


async def test_hit_carries_the_document_fields(store: LocalIndexStore) -> None:
    doc = make_doc(1, "release checklist", title="Release")
    await store.upsert([doc])
    (hit,) = await store.search("checklist", None, security=None)
    assert (hit.key, hit.parent_key, hit.title, hit.url, hit.path, hit.content, hit.source_kind,
            hit.page_start, hit.page_end) == (doc.id, doc.parent_key, "Release", doc.url,
                                              doc.path, "release checklist", "file", 3, 4)


async def test_vector_nearest_ranks_first(store: LocalIndexStore) -> None:
    basis = np.eye(DIMS)
    await store.upsert([make_doc(i, f"doc {i}", vector=basis[i].tolist()) for i in range(4)])
    query = (basis[2] + 0.1 * basis[3]).tolist()
    hits = await store.search("", query, security=None, top=2)
    assert [h.key for h in hits] == [make_doc(2, "").id, make_doc(3, "").id]


async def test_hybrid_prefers_the_chunk_both_legs_agree_on(store: LocalIndexStore) -> None:
    basis = np.eye(DIMS)
    fillers = [make_doc(10 + k, f"filler {k}", vector=(basis[1] + basis[3 + k % 4]).tolist())
               for k in range(8)]  # nearer the query than doc 1, no text match
    await store.upsert([
        make_doc(1, "travel policy", vector=basis[0].tolist()),        # text only
        make_doc(2, "something else", vector=basis[1].tolist()),       # vector only
        make_doc(3, "travel expenses", vector=(basis[1] * 0.9 + basis[2] * 0.1).tolist()),
        *fillers,
    ])
    hits = await store.search("travel", basis[1].tolist(), security=None, top=3)
    assert [h.key for h in hits] == [make_doc(n, "").id for n in (3, 1, 2)]


async def test_diacritics_and_case_are_folded(store: LocalIndexStore) -> None:
    await store.upsert([make_doc(1, "Réunion du Café")])
    assert len(await store.search("cafe reunion", None, security=None)) == 1


async def test_title_is_searched(store: LocalIndexStore) -> None:
    await store.upsert([make_doc(1, "body text", title="Onboarding handbook")])
    assert len(await store.search("handbook", None, security=None)) == 1


async def test_top_limits_results(store: LocalIndexStore) -> None:
    await store.upsert([make_doc(i, f"common word {i}") for i in range(30)])
    assert len(await store.search("common", None, security=None, top=7)) == 7
    assert len(await store.search("common", vector_for("q"), security=None, top=30)) == 30


@pytest.mark.parametrize("top", [0, -1, True, 2.5])
async def test_bad_top_is_refused(store: LocalIndexStore, top: object) -> None:
    with pytest.raises(IndexContractError):
        await store.search("x", None, security=None, top=top)  # type: ignore[arg-type]


async def test_wrong_vector_dimensions_are_refused(store: LocalIndexStore) -> None:
    with pytest.raises(IndexContractError):
        await store.search("x", [1.0] * (DIMS + 1), security=None)
    with pytest.raises(IndexContractError):
        await store.search("x", [float("nan")] * DIMS, security=None)


async def test_no_terms_and_no_vector_finds_nothing(store: LocalIndexStore) -> None:
    await store.upsert([make_doc(1, "anything")])
    assert await store.search("  *** ", None, security=None) == []


async def test_empty_security_fields_match_nobody(store: LocalIndexStore) -> None:
    await store.upsert([make_doc(1, "secret plans", groups=[], users=[])])
    everyone = security_filter(U[0], G, principal_values=[EVERYONE])
    assert await store.search("secret", vector_for("q"), security=everyone) == []
    assert len(await store.search("secret", None, security=None)) == 1


async def test_an_empty_filter_matches_nothing(store: LocalIndexStore) -> None:
    await store.upsert([make_doc(1, "open notes", groups=[EVERYONE])])
    assert await store.search("open", vector_for("q"), security=security_filter(None, [])) == []


async def test_principal_values_match_like_groups(store: LocalIndexStore) -> None:
    await store.upsert([make_doc(1, "canteen menu", groups=[EVERYONE])])
    reader = security_filter(U[0], [], principal_values=[EVERYONE])
    assert len(await store.search("canteen", None, security=reader)) == 1
    assert await store.search("canteen", None, security=security_filter(U[0], [G[0]])) == []


async def test_trimming_applies_before_the_candidate_cut(store: LocalIndexStore) -> None:
    # 200 better-ranked chunks the reader cannot see must not push out the one they can.
    hidden = [make_doc(i, "report report report", groups=[G[1]]) for i in range(200)]
    await store.upsert([*hidden, make_doc(999, "report", groups=[G[0]])])
    hits = await store.search("report", vector_for("report report report"),
                              security=security_filter(None, [G[0]]), top=5)
    assert [h.key for h in hits] == [make_doc(999, "").id]


async def test_words_in_most_chunks_do_not_crowd_out_rare_ones(store: LocalIndexStore) -> None:
    # "the" is in every chunk, so bm25 gives it its floor weight; the rare word decides.
    await store.upsert([make_doc(i, f"the filler text number{i}") for i in range(80)] +
                       [make_doc(500, "the zebra crossing")])
    hits = await store.search("the zebra", None, security=security_filter(None, [G[0]]), top=10)
    assert hits[0].key == make_doc(500, "").id
    assert len(hits) == 10  # chunks matching only "the" still fill the rest


async def test_leaving_out_common_words_does_not_change_the_ranking(
        store: LocalIndexStore, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    words = [f"word{k}" for k in range(10)]
    texts = ["the " + " ".join(rng.choice(words, 1 + i % 3)) + " the" * (i % 3) for i in range(300)]
    await store.upsert([make_doc(i, text) for i, text in enumerate(texts)])
    ranked: list[list[str]] = []
    original = LocalIndexStore._ranked

    def spy(conn: object, terms: list[str], *args: object) -> list[int]:
        ranked.append(list(terms))
        return original(conn, terms, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(LocalIndexStore, "_ranked", staticmethod(spy))
    reader = security_filter(None, [G[0]])
    pruned = await store.search("the word1 word2", None, security=reader, top=40)
    assert ranked == [["word1", "word2"]]  # "the" left out, and the rest filled the depth
    monkeypatch.setattr("ingest.index.local_store.is_floor_weighted", lambda n, total: False)
    full = await store.search("the word1 word2", None, security=reader, top=40)
    assert ranked[-1] == ["the", "word1", "word2"]
    assert [h.key for h in pruned] == [h.key for h in full]


async def test_a_query_of_only_common_words_still_matches(store: LocalIndexStore) -> None:
    await store.upsert([make_doc(i, f"the and of {i}") for i in range(10)])
    assert len(await store.search("the and", None, security=None, top=20)) == 10


# -- exhaustive trimming -------------------------------------------------------------------

doc_acls = st.tuples(st.lists(st.sampled_from([*G, EVERYONE]), max_size=3, unique=True),
                     st.lists(st.sampled_from(U), max_size=2, unique=True))
filters = st.tuples(st.none() | st.sampled_from(U),
                    st.lists(st.sampled_from([*G, EVERYONE]), max_size=4, unique=True))


def allowed(acls: list[tuple[list[str], list[str]]], user: str | None,
            groups: list[str]) -> set[int]:
    """The set semantics, written out independently of the code under test."""
    return {n for n, (doc_groups, doc_users) in enumerate(acls)
            if set(doc_groups) & set(groups) or (user is not None and user in doc_users)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(acls=st.lists(doc_acls, min_size=1, max_size=25), probes=st.lists(filters, min_size=1,
                                                                           max_size=8))
def test_trimming_is_exactly_the_set_semantics(
        acls: list[tuple[list[str], list[str]]],
        probes: list[tuple[str | None, list[str]]]) -> None:
    async def run() -> None:
        with tempfile.TemporaryDirectory() as root:
            store = await LocalIndexCatalog(Path(root)).create_index("trim-v1", DIMS)
            docs = [make_doc(n, f"common text number{n}", groups=g, users=u)
                    for n, (g, u) in enumerate(acls)]
            await store.upsert(docs)
            key_of = {d.id: n for n, d in enumerate(docs)}
            top = len(docs) + 5
            for user, groups in probes:
                security = security_filter(user, groups)
                expected = allowed(acls, user, groups)
                for vector in (None, vector_for(f"probe {user} {groups}")):
                    for text in ("common", ""):
                        if not text and vector is None:
                            continue
                        hits = await store.search(text, vector, security=security, top=top)
                        assert {key_of[h.key] for h in hits} == expected, (text, vector is None)
                        assert len(hits) == len(expected)
            assert len(await store.search("common", None, security=None, top=top)) == len(docs)
            await store.close()
    asyncio.run(run())


# -- hostile query text --------------------------------------------------------------------

HOSTILE_QUERIES = [
    '"', '""', "'", "*", "a*", "^a", "NEAR(a b)", "a AND", "OR", "NOT a", "a + b", "(a", "a)",
    "content:secret", "title : x", "{content title}: x", "- a", "\x00", "a\x00b", "\ud800",
    '"unterminated', "a" * 10_000, "\\", ";", "--", "/* */", "' OR 1=1 --", "✓ ü ß 日本語",
    " ".join(["w"] * 1000), "\t\n\r", "a:b:c", "NEAR/3", "rank", "bm25(fts)",
]


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
async def test_hostile_queries_are_plain_text(store: LocalIndexStore, query: str) -> None:
    await store.upsert([make_doc(1, "secret content", groups=[G[1]]),
                        make_doc(2, "public content", groups=[G[0]])])
    hits = await store.search(query, None, security=security_filter(None, [G[0]]))
    assert all(h.key == make_doc(2, "").id for h in hits)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text(max_size=200))
async def test_any_text_is_a_valid_query(store: LocalIndexStore, query: str) -> None:
    await store.upsert([make_doc(1, "alpha beta", groups=[G[1]])])
    hits = await store.search(query, None, security=SecurityFilter(None, (G[0],)))
    assert hits == []
    await store.search(query, None, security=None)


def test_fts_query_quotes_every_term() -> None:
    assert fts_query('budget "Q3" NEAR(x)') == '"budget" OR """Q3""" OR "NEAR(x)"'
    assert fts_query("  ") is None and fts_query("*** --") is None
    assert fts_query("a a a") == '"a"'
    assert fts_query(" ".join(f"t{i}" for i in range(500))).count(" OR ") == MAX_QUERY_TERMS - 1


def test_only_certain_ascii_tokens_are_candidates_for_pruning() -> None:
    assert ascii_token("Policy?") == "policy"
    assert ascii_token("(the)") == "the"
    assert ascii_token("e-mail") is None and ascii_token("café") is None
    assert is_floor_weighted(50, 100) and not is_floor_weighted(49, 100)
    assert not is_floor_weighted(0, 0)


def test_rrf_sums_reciprocal_ranks() -> None:
    scores = rrf([[1, 2, 3], [3, 1]])
    assert scores[1] == pytest.approx(1 / 61 + 1 / 62)
    assert scores[3] == pytest.approx(1 / 63 + 1 / 61)
    assert scores[2] == pytest.approx(1 / 62)
