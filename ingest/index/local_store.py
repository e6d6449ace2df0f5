"""One physical index of the embedded backend: a SQLite file with FTS5, searched with numpy.

Tables, all derived from the index definition stored in the file's `meta` table:

    docs        one row per chunk: every field (collections as JSON, the vector as a float32 BLOB)
    fts         FTS5 over the searchable text fields (external content: `docs`), kept by triggers
    principals  (doc_id, kind 'g'|'u', value) from group_ids / user_ids, kept by triggers
    meta        layout version, definition, and write generations that invalidate caches

Security trimming uses the principals table, loaded into memory once per write generation, for
the text and the vector leg alike, so the two legs cannot disagree on who may see what.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from ingest.errors import IndexUnavailable
from ingest.index.base import (
    IndexClosed,
    IndexContractError,
    IndexNotFound,
    InvalidDocument,
    indexed_item_from_chunks,
)
from ingest.index.local_search import (
    PrincipalIndex,
    VectorMatrix,
    ascii_token,
    is_floor_weighted,
    match_expression,
    query_terms,
    rrf,
)
from ingest.index.schema import (
    SECURITY_FIELDS,
    check_document,
    check_merge,
    fields_of,
    vector_dimensions,
)
from ingest.models import IndexDoc, IndexedItem, ItemRef, SearchHit
from ingest.query import SecurityFilter

FORMAT_VERSION = 1  # of the SQLite layout below; bump with a migration when it changes
CANDIDATES_MIN = 50  # each leg of a hybrid query ranks at least this many before fusion
_IN_BATCH = 500  # ids per `IN (...)` list, well under SQLite's variable limit
_FTS_FETCH = 512  # rows per fetch while skipping text matches the reader may not see
_BUSY_TIMEOUT_MS = 10_000  # another process's write transaction is waited for, not failed
_TITLE_WEIGHT = 2.0  # bm25 weight of a title hit relative to a content hit

_T = TypeVar("_T")
_SQL_TYPES = {"Edm.Int32": "INTEGER", "Collection(Edm.Single)": "BLOB"}


def _ddl(definition: Mapping[str, Any]) -> list[str]:
    """The statements that create an empty index for `definition`."""
    types = fields_of(definition)
    cols = ", ".join(f'"{n}" {_SQL_TYPES.get(t, "TEXT")}{" NOT NULL UNIQUE" if n == "id" else ""}'
                     for n, t in types.items())
    text = [n for n, t in types.items() if t == "Edm.String" and
            any(f["name"] == n and f.get("searchable") for f in definition["fields"])]
    fts_cols = ", ".join(f'"{n}"' for n in text)
    new_vals = ", ".join(f'new."{n}"' for n in text)
    old_vals = ", ".join(f'old."{n}"' for n in text)
    weights = ", ".join(str(_TITLE_WEIGHT if n == "title" else 1.0) for n in text)
    principals = "".join(
        f"INSERT INTO principals(doc_id, kind, value) SELECT new.doc_id, '{kind}', value "
        f'FROM json_each(new."{field}");'
        for kind, field in (("g", SECURITY_FIELDS[0]), ("u", SECURITY_FIELDS[1])))
    return [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        f"CREATE TABLE docs (doc_id INTEGER PRIMARY KEY, {cols})",
        "CREATE INDEX docs_parent ON docs(parent_key)",
        "CREATE INDEX docs_drive ON docs(drive_id, item_id)",
        # doc_id is docs.doc_id (the row id), so FTS and principals join on integers.
        "CREATE TABLE principals "
        "(doc_id INTEGER NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL)",
        "CREATE INDEX principals_kind_value ON principals(kind, value, doc_id)",
        "CREATE INDEX principals_doc ON principals(doc_id)",
        f"CREATE VIRTUAL TABLE fts USING fts5({fts_cols}, content='docs', content_rowid='doc_id', "
        "tokenize='unicode61 remove_diacritics 2')",
        f"INSERT INTO fts(fts, rank) VALUES ('rank', 'bm25({weights})')",
        # Per-term document counts, to leave out terms bm25 weighs at its floor (see search).
        "CREATE VIRTUAL TABLE fts_vocab USING fts5vocab(fts, row)",
        f"CREATE TRIGGER docs_ai AFTER INSERT ON docs BEGIN "
        f"INSERT INTO fts(rowid, {fts_cols}) VALUES (new.doc_id, {new_vals}); {principals} END",
        f"CREATE TRIGGER docs_ad AFTER DELETE ON docs BEGIN "
        f"INSERT INTO fts(fts, rowid, {fts_cols}) VALUES ('delete', old.doc_id, {old_vals}); "
        "DELETE FROM principals WHERE doc_id = old.doc_id; END",
        f"CREATE TRIGGER docs_au_text AFTER UPDATE OF {fts_cols} ON docs BEGIN "
        f"INSERT INTO fts(fts, rowid, {fts_cols}) VALUES ('delete', old.doc_id, {old_vals}); "
        f"INSERT INTO fts(rowid, {fts_cols}) VALUES (new.doc_id, {new_vals}); END",
        f'CREATE TRIGGER docs_au_acl AFTER UPDATE OF "{SECURITY_FIELDS[0]}", '
        f'"{SECURITY_FIELDS[1]}" ON docs BEGIN'
        f"  DELETE FROM principals WHERE doc_id = old.doc_id; {principals} END",
    ]


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    # FULL, not NORMAL: a commit must survive power loss too, since the pipeline advances its
    # cursor once a write returns (a lost write would be a lost change).
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def _chunks(values: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for i in range(0, len(values), _IN_BATCH):
        yield values[i:i + _IN_BATCH]


def _in_thread(method: Callable[..., _T]) -> Callable[..., Awaitable[_T]]:
    """An index call run in a worker thread (the connection's lock serialises them): SQLite's
    commits and the vectors' encoding never hold up the event loop, whose other items are
    waiting on the network meanwhile."""

    @functools.wraps(method)
    async def run(self: Any, *args: Any, **kwargs: Any) -> _T:
        return await asyncio.to_thread(method, self, *args, **kwargs)

    return run


class LocalIndexStore:
    """One physical index in one SQLite file; see the `IndexStore` protocol for the promises.

    One connection per store, guarded by a lock, so the store may be shared between threads;
    the async methods do their (short) SQLite work inline.
    """

    def __init__(self, path: Path, name: str) -> None:
        """Open the index file at `path` (`IndexNotFound` if missing, `IndexUnavailable` if
        unreadable)."""
        if not path.is_file():
            raise IndexNotFound(f"index {name!r} does not exist")
        self.name = name
        self.path = path
        self._lock = threading.Lock()
        self._closed = False
        self._matrix: VectorMatrix | None = None
        self._principals: PrincipalIndex | None = None
        try:
            self._conn = _connect(path)
        except sqlite3.Error as exc:
            raise IndexUnavailable(f"index {name!r} could not be opened: {exc}") from exc
        try:
            meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
            version = int(meta["format_version"])
            self.definition: dict[str, Any] = json.loads(meta["definition"])
        except (sqlite3.Error, KeyError, ValueError) as exc:
            self._conn.close()
            raise IndexUnavailable(f"index {name!r} could not be opened: {exc}") from exc
        if version != FORMAT_VERSION:
            self._conn.close()
            raise IndexUnavailable(f"index {name!r} has layout version {version}, "
                                   f"expected {FORMAT_VERSION}")
        self.dimensions = vector_dimensions(self.definition)
        self._types = fields_of(self.definition)
        self._columns = list(self._types)

    @staticmethod
    def initialise(path: Path, definition: Mapping[str, Any]) -> None:
        """Write an empty index for `definition` into a new SQLite file at `path`."""
        conn = _connect(path)
        try:
            conn.execute("BEGIN")
            for statement in _ddl(definition):
                conn.execute(statement)
            conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)", [
                ("format_version", str(FORMAT_VERSION)),
                ("definition", json.dumps(definition, sort_keys=True)),
                ("generation", "0"),  # bumped by every write: principals may have changed
                ("vector_generation", "0"),  # bumped by writes that can change vectors
            ])
            conn.execute("COMMIT")
        finally:
            conn.close()

    # -- plumbing -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock; SQLite failures become `IndexUnavailable`."""
        with self._lock:
            if self._closed:
                raise IndexClosed(f"index {self.name!r} is closed")
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise IndexUnavailable(f"index {self.name!r}: {exc}") from exc

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query in it sees the same committed state, so the cached
        principals of that state's generation trim exactly what the queries return."""
        with self._read() as conn:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    @contextlib.contextmanager
    def _write(self, *, vectors_change: bool) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it is committed or none of it."""
        with self._read() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                # Other connections (other processes) see the bumps and drop their caches.
                keys = ("generation", "vector_generation") if vectors_change else ("generation",)
                conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key IN "
                             f"({', '.join('?' for _ in keys)})", keys)
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):  # already rolled back by SQLite
                    conn.execute("ROLLBACK")
                raise
            finally:
                self._principals = None
                if vectors_change:
                    self._matrix = None

    def _encode(self, name: str, value: object) -> object:
        """A checked field value as stored in its SQLite column."""
        edm = self._types[name]
        if edm == "Collection(Edm.String)":
            return json.dumps(value)
        if edm == "Collection(Edm.Single)":
            return np.asarray(value, dtype="<f4").tobytes()
        return value

    def _decode(self, row: Sequence[object]) -> dict[str, object]:
        doc: dict[str, object] = {}
        for name, value in zip(self._columns, row, strict=True):
            edm = self._types[name]
            if edm == "Collection(Edm.String)":
                doc[name] = json.loads(str(value)) if value is not None else []
            elif edm == "Collection(Edm.Single)":
                doc[name] = np.frombuffer(value, dtype="<f4").tolist() if value else []
            else:
                doc[name] = value
        return doc

    def _select(self, conn: sqlite3.Connection, where: str, params: Sequence[object],
                columns: Sequence[str] | None = None) -> list[dict[str, object]]:
        cols = list(columns or self._columns)
        quoted = ", ".join(f'"{c}"' for c in cols)
        sql = f"SELECT {quoted} FROM docs WHERE {where}"
        if columns is None:
            return [self._decode(r) for r in conn.execute(sql, params)]
        return [dict(zip(cols, r, strict=True)) for r in conn.execute(sql, params)]

    # -- writes ---------------------------------------------------------------------------

    @_in_thread
    def upsert(self, docs: Sequence[IndexDoc]) -> None:
        """Insert or replace each document by key, all in one transaction."""
        rows: dict[str, list[object]] = {}
        for doc in docs:
            values = check_document(doc, self._types, dimensions=self.dimensions)
            if doc.id in rows:
                raise InvalidDocument(f"document key {doc.id} appears twice in one upsert")
            rows[doc.id] = [self._encode(c, values[c]) for c in self._columns]
        if not rows:
            return
        cols = ", ".join(f'"{c}"' for c in self._columns)
        marks = ", ".join("?" for _ in self._columns)
        updates = ", ".join(f'"{c}" = excluded."{c}"' for c in self._columns if c != "id")
        sql = f"INSERT INTO docs ({cols}) VALUES ({marks}) ON CONFLICT(id) DO UPDATE SET {updates}"
        with self._write(vectors_change=True) as conn:
            conn.executemany(sql, rows.values())

    @_in_thread
    def merge(self, item: ItemRef, fields: Mapping[str, object]) -> None:
        """Set item-wide `fields` on every chunk of `item`; no-op when it has none."""
        values = check_merge(fields, self._types, dimensions=self.dimensions)
        if not values:
            return
        sets = ", ".join(f'"{n}" = ?' for n in values)
        params = [*(self._encode(n, v) for n, v in values.items()), item.parent_key]
        with self._write(vectors_change=False) as conn:
            conn.execute(f"UPDATE docs SET {sets} WHERE parent_key = ?", params)

    @_in_thread
    def prune(self, item: ItemRef, keep: Collection[str]) -> None:
        """Delete the chunks of `item` whose key is not in `keep`."""
        if isinstance(keep, str):
            raise IndexContractError("prune(keep=...) takes a collection of keys, not one string")
        keep_json = json.dumps(sorted(keep))
        with self._write(vectors_change=True) as conn:
            conn.execute("DELETE FROM docs WHERE parent_key = ? AND id NOT IN "
                         "(SELECT value FROM json_each(?))", (item.parent_key, keep_json))

    @_in_thread
    def delete_item(self, item: ItemRef) -> None:
        """Delete every chunk of `item`."""
        with self._write(vectors_change=True) as conn:
            conn.execute("DELETE FROM docs WHERE parent_key = ?", (item.parent_key,))

    # -- reads ----------------------------------------------------------------------------

    @_in_thread
    def indexed_state(self, items: Sequence[ItemRef]) -> Mapping[ItemRef, IndexedItem]:
        """The manifest of each item that has chunks, read in batches by parent key."""
        by_parent = {item.parent_key: item for item in items}
        cols = ["id", "parent_key", "chunk_no", "content_hash", "content_tag", "acl_hash",
                "embedding_model", "title", "url", "path", "last_modified", "ancestor_ids"]
        grouped: dict[str, list[dict[str, object]]] = {}
        with self._snapshot() as conn:
            for batch in _chunks(list(by_parent)):
                where = f"parent_key IN ({', '.join('?' for _ in batch)})"
                for row in self._select(conn, where, batch, cols):
                    row["ancestor_ids"] = json.loads(str(row["ancestor_ids"] or "[]"))
                    grouped.setdefault(str(row["parent_key"]), []).append(row)
        return {by_parent[p]: indexed_item_from_chunks(by_parent[p], rows)
                for p, rows in grouped.items()}

    @_in_thread
    def items_under(self, drive_id: str, folder_id: str) -> set[ItemRef]:
        """Every item of library `drive_id` that has folder `folder_id` among its ancestors."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT DISTINCT drive_id, item_id FROM docs WHERE drive_id = ? AND EXISTS "
                "(SELECT 1 FROM json_each(docs.ancestor_ids) WHERE json_each.value = ?)",
                (drive_id, folder_id),
            ).fetchall()
        return {ItemRef(d, i) for d, i in rows}

    @_in_thread
    def drive_items(self, drive_id: str) -> set[ItemRef]:
        """Every item with at least one chunk in library `drive_id`."""
        with self._read() as conn:
            rows = conn.execute("SELECT DISTINCT drive_id, item_id FROM docs WHERE drive_id = ?",
                                (drive_id,)).fetchall()
        return {ItemRef(d, i) for d, i in rows}

    @_in_thread
    def vectors(self, keys: Sequence[str]) -> Mapping[str, list[float]]:
        """The stored vector (as float32 values) of each existing key."""
        out: dict[str, list[float]] = {}
        with self._snapshot() as conn:
            for batch in _chunks(list(dict.fromkeys(keys))):
                marks = ", ".join("?" for _ in batch)
                sql = f"SELECT id, content_vector FROM docs WHERE id IN ({marks})"
                for key, blob in conn.execute(sql, batch):
                    if blob:
                        out[key] = np.frombuffer(blob, dtype="<f4").tolist()
        return out

    async def documents(self) -> list[dict[str, object]]:
        """Every document with every field (security fields included), sorted by key."""
        with self._read() as conn:
            return self._select(conn, "1 ORDER BY id", ())

    async def count(self, *, drive_id: str | None = None) -> int:
        """The number of chunks, overall or in one library."""
        with self._read() as conn:
            if drive_id is None:
                return int(conn.execute("SELECT count(*) FROM docs").fetchone()[0])
            return int(conn.execute("SELECT count(*) FROM docs WHERE drive_id = ?",
                                    (drive_id,)).fetchone()[0])

    async def search(
        self,
        text: str,
        vector: Sequence[float] | None,
        *,
        security: SecurityFilter | None,
        top: int = 10,
    ) -> list[SearchHit]:
        """Hybrid search: bm25 over the text and exact cosine over the vector, each restricted
        to the documents `security` permits, fused by reciprocal rank fusion.

        A query with no searchable term and no vector returns nothing; a filter that matches
        nothing returns nothing. Any query text is safe: it is never parsed as FTS5 syntax.
        """
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise IndexContractError(f"top must be a positive integer, got {top!r}")
        if vector is not None:
            if len(vector) != self.dimensions:
                raise IndexContractError(f"query vector has {len(vector)} dimensions, "
                                         f"index {self.name!r} has {self.dimensions}")
            if not np.isfinite(np.asarray(vector, dtype=np.float64)).all():
                raise IndexContractError("query vector holds a NaN or infinite value")
        if security is not None and security.matches_nothing:
            return []
        terms = query_terms(text)
        depth = max(top, CANDIDATES_MIN)
        rankings: list[list[int]] = []
        with self._snapshot() as conn:
            generation, vector_generation = self._generations(conn)
            permitted = None if security is None else \
                self._principal_index(conn, generation).permitted(security)
            if permitted is not None and not len(permitted):
                return []
            if terms:
                rankings.append(self._text_ranking(conn, terms, permitted, depth))
            if vector is not None:
                matrix = self._vector_matrix(conn, vector_generation)
                allowed = None if permitted is None else matrix.positions(permitted)
                rankings.append(matrix.nearest(vector, depth, allowed))
            scores = rrf(rankings)
            cols = ["doc_id", "id", "parent_key", "title", "url", "path", "content",
                    "source_kind", "page_start", "page_end"]
            found: list[dict[str, Any]] = []
            for batch in _chunks(list(scores)):
                where = f"doc_id IN ({', '.join('?' for _ in batch)})"
                found += self._select(conn, where, batch, cols)
        # Ties (equal fused scores) go to the smaller key, so results are deterministic.
        found.sort(key=lambda r: (-scores[r["doc_id"]], r["id"]))
        return [SearchHit(
            key=r["id"], parent_key=r["parent_key"], title=r["title"] or "", url=r["url"] or "",
            path=r["path"] or "", content=r["content"] or "", score=scores[r["doc_id"]],
            source_kind=r["source_kind"] or "", page_start=r["page_start"], page_end=r["page_end"],
        ) for r in found[:top]]

    def _text_ranking(self, conn: sqlite3.Connection, terms: Sequence[str],
                      permitted: npt.NDArray[np.int64] | None, depth: int) -> list[int]:
        """Row ids of the best `depth` text matches (bm25 order) among `permitted` (all if None).

        Ranking every match is what costs: a word in most chunks ("the", "what") makes FTS5
        score the whole index. Such words get bm25's floor weight, so they are left out first;
        only when the other terms do not fill `depth` is the full query ranked.
        """
        total = int(conn.execute("SELECT count(*) FROM docs").fetchone()[0])
        common = set()
        for term in terms:
            token = ascii_token(term)
            if token is None:
                continue
            row = conn.execute("SELECT doc FROM fts_vocab WHERE term = ?", (token,)).fetchone()
            if row is not None and is_floor_weighted(int(row[0]), total):
                common.add(term)
        if common and len(common) < len(terms):
            ranking = self._ranked(conn, [t for t in terms if t not in common], permitted, depth)
            if len(ranking) >= depth:
                return ranking
        return self._ranked(conn, terms, permitted, depth)

    @staticmethod
    def _ranked(conn: sqlite3.Connection, terms: Sequence[str],
                permitted: npt.NDArray[np.int64] | None, depth: int) -> list[int]:
        """Row ids matching any of `terms`, best bm25 first, among `permitted`, at most `depth`."""
        match = match_expression(terms)
        sql = "SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY rank, rowid"
        if permitted is None:
            return [r[0] for r in conn.execute(sql + " LIMIT ?", (match, depth))]
        # Walk the ranking and keep what the reader may see. Handing the permitted ids to FTS5
        # as `rowid IN (...)` instead makes it run one lookup per permitted row: far slower.
        ranking: list[int] = []
        cursor = conn.execute(sql, (match,))
        try:
            while len(ranking) < depth and (rows := cursor.fetchmany(_FTS_FETCH)):
                ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                kept = ids[np.isin(ids, permitted, assume_unique=True)]
                ranking.extend(int(i) for i in kept[:depth - len(ranking)])
        finally:
            cursor.close()
        return ranking

    @staticmethod
    def _generations(conn: sqlite3.Connection) -> tuple[int, int]:
        meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN "
                                 "('generation', 'vector_generation')").fetchall())
        return int(meta["generation"]), int(meta["vector_generation"])

    def _principal_index(self, conn: sqlite3.Connection, generation: int) -> PrincipalIndex:
        """The cached principal index, rebuilt when any connection has written since."""
        if self._principals is None or self._principals.generation != generation:
            rows = conn.execute("SELECT kind, value, doc_id FROM principals "
                                "ORDER BY kind, value, doc_id")
            self._principals = PrincipalIndex.build(generation, rows)
        return self._principals

    def _vector_matrix(self, conn: sqlite3.Connection, generation: int) -> VectorMatrix:
        """The cached vector matrix, rebuilt when any connection has changed vectors since."""
        if self._matrix is None or self._matrix.generation != generation:
            rows = conn.execute("SELECT doc_id, content_vector FROM docs "
                                "WHERE content_vector IS NOT NULL ORDER BY doc_id")
            self._matrix = VectorMatrix.build(generation, rows, self.dimensions)
        return self._matrix

    async def close(self) -> None:
        """Close the connection; later calls raise `IndexClosed`."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._matrix = None
                self._principals = None
                self._conn.close()
