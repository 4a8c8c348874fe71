"""The collections' online store: one SQLite file with the chunks, their vectors (sqlite-vec, one
partition per collection) and a BM25 index (FTS5), plus the source offsets each write applied.

Why not Feast's `retrieve_online_documents_v2` (features/rag.py uses it for the docs): it copies every
vector of the view into a scratch table on each query, which is fine for a few thousand chunks and not
for a team's collection; it cannot filter by collection before ranking; and it keeps no offsets, so an
indexer could not write it exactly once. Here a document's chunks are replaced, and the source offsets
recorded, in one SQLite transaction; readers (request-path workers, `streamgate rag search`) open the
same file in WAL mode and never block the writer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from features.sqlite_vec import _dbapi

DIM = 384
_RRF_K = 60
_WORD = re.compile(r"\w+", re.UNICODE)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS chunks(id INTEGER PRIMARY KEY, collection TEXT NOT NULL,
  doc_id TEXT NOT NULL, version INTEGER NOT NULL, chunk_id TEXT NOT NULL UNIQUE, seq INTEGER NOT NULL,
  title TEXT, text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(collection, doc_id);
CREATE TABLE IF NOT EXISTS docs(collection TEXT NOT NULL, doc_id TEXT NOT NULL, version INTEGER NOT NULL,
  deleted INTEGER NOT NULL, PRIMARY KEY(collection, doc_id));
CREATE TABLE IF NOT EXISTS applied(app_id TEXT PRIMARY KEY, last_offset INTEGER NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS vec_chunks USING vec0(collection TEXT partition key,
  embedding float[{DIM}] distance_metric=cosine);
CREATE VIRTUAL TABLE IF NOT EXISTS fts_chunks USING fts5(text, collection UNINDEXED,
  tokenize='porter unicode61');
"""


@dataclass(frozen=True)
class ChunkRow:
    collection: str
    doc_id: str
    version: int
    chunk_id: str
    seq: int
    title: str | None
    text: str


@dataclass(frozen=True)
class Hit:
    collection: str
    doc_id: str
    version: int
    chunk_id: str
    title: str | None
    text: str
    #: cosine distance for vector hits; the fused reciprocal-rank score for hybrid ones; -bm25 for BM25
    score: float


def connect(path: Path) -> Any:
    """A connection with sqlite-vec loaded and the schema in place."""
    import sqlite_vec

    path.parent.mkdir(parents=True, exist_ok=True)
    conn = _dbapi().connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
    conn.enable_load_extension(True)
    sqlite_vec.load(conn)
    conn.enable_load_extension(False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
    return conn


def words(question: str) -> list[str]:
    """The question's distinct words, lower-cased (letters, digits, `_`: no query syntax survives)."""
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(question)))


def fts_query(question: str) -> str:
    """Every word of the question as a quoted FTS5 term, OR-ed: BM25 ranks, no operator syntax leaks in."""
    return " OR ".join(f'"{w}"' for w in words(question))


class OnlineStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = connect(path)

    def close(self) -> None:
        self.conn.close()

    # --- the indexer's side -----------------------------------------------------------------------
    def applied(self, app_id: str) -> int | None:
        row = self.conn.execute("SELECT last_offset FROM applied WHERE app_id = ?", (app_id,)).fetchone()
        return None if row is None else int(row[0])

    def versions(self) -> dict[tuple[str, str], tuple[int, bool]]:
        """(collection, doc_id) -> (latest version applied, deleted)."""
        rows = self.conn.execute("SELECT collection, doc_id, version, deleted FROM docs")
        return {(c, d): (int(v), bool(x)) for c, d, v, x in rows}

    def apply(self, docs: dict[tuple[str, str], tuple[int, bool, list[ChunkRow], NDArray[np.float32]]],
              offsets: dict[str, int]) -> None:
        """Replace each document's chunks (none when deleted) and record `offsets`, in one transaction."""
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            for (collection, doc_id), (version, deleted, rows, vectors) in docs.items():
                old = [r[0] for r in c.execute("SELECT id FROM chunks WHERE collection = ? AND doc_id = ?",
                                               (collection, doc_id))]
                for table in ("chunks", "vec_chunks", "fts_chunks"):
                    key = "id" if table == "chunks" else "rowid"
                    c.executemany(f"DELETE FROM {table} WHERE {key} = ?", [(i,) for i in old])
                for row, vector in zip(rows, vectors, strict=True):
                    cur = c.execute(
                        "INSERT INTO chunks(collection, doc_id, version, chunk_id, seq, title, text) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (row.collection, row.doc_id, row.version, row.chunk_id, row.seq, row.title, row.text))
                    rowid = cur.lastrowid
                    c.execute("INSERT INTO vec_chunks(rowid, collection, embedding) VALUES (?, ?, ?)",
                              (rowid, collection, np.asarray(vector, np.float32).tobytes()))
                    c.execute("INSERT INTO fts_chunks(rowid, text, collection) VALUES (?, ?, ?)",
                              (rowid, row.text, collection))
                c.execute("INSERT INTO docs VALUES (?, ?, ?, ?) ON CONFLICT(collection, doc_id) DO UPDATE "
                          "SET version = excluded.version, deleted = excluded.deleted",
                          (collection, doc_id, version, int(deleted)))
            c.executemany("INSERT INTO applied VALUES (?, ?) ON CONFLICT(app_id) DO UPDATE "
                          "SET last_offset = excluded.last_offset", list(offsets.items()))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    # --- the readers' side ------------------------------------------------------------------------
    def count(self, collection: str | None = None) -> int:
        if collection is None:
            return int(self.conn.execute("SELECT count(*) FROM chunks").fetchone()[0])
        return int(self.conn.execute("SELECT count(*) FROM chunks WHERE collection = ?",
                                     (collection,)).fetchone()[0])

    def listing(self, collection: str) -> list[tuple[str, int, str]]:
        """(doc id, version, chunk id) of every chunk of `collection`."""
        rows = self.conn.execute("SELECT doc_id, version, chunk_id FROM chunks WHERE collection = ?",
                                 (collection,))
        return [(d, int(v), c) for d, v, c in rows]

    def live_docs(self, collection: str) -> int:
        return int(self.conn.execute("SELECT count(*) FROM docs WHERE collection = ? AND deleted = 0",
                                     (collection,)).fetchone()[0])

    def vector_ids(self, collection: str, query: NDArray[np.float32], k: int) -> list[tuple[int, float]]:
        rows = self.conn.execute(
            "SELECT rowid, distance FROM vec_chunks WHERE embedding MATCH ? AND k = ? AND collection = ? "
            "ORDER BY distance", (np.asarray(query, np.float32).tobytes(), k, collection))
        return [(int(r), float(d)) for r, d in rows]

    def bm25_ids(self, collection: str, question: str, k: int) -> list[tuple[int, float]]:
        match = fts_query(question)
        if not match:
            return []
        rows = self.conn.execute(
            "SELECT rowid, bm25(fts_chunks) AS s FROM fts_chunks WHERE fts_chunks MATCH ? AND collection = ? "
            "ORDER BY s LIMIT ?", (match, collection, k))
        return [(int(r), -float(s)) for r, s in rows]

    def hits(self, ranked: Sequence[tuple[int, float]]) -> list[Hit]:
        if not ranked:
            return []
        ids = [r for r, _ in ranked]
        marks = ",".join("?" * len(ids))
        rows = {r[0]: r for r in self.conn.execute(
            "SELECT id, collection, doc_id, version, chunk_id, title, text FROM chunks "
            f"WHERE id IN ({marks})", ids)}
        return [Hit(rows[i][1], rows[i][2], int(rows[i][3]), rows[i][4], rows[i][5], rows[i][6], s)
                for i, s in ranked if i in rows]


def fuse(rankings: Iterable[list[tuple[int, float]]], k: int) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion: each list adds 1/(60 + rank) to the ids it ranks."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, (rowid, _) in enumerate(ranking, 1):
            scores[rowid] = scores.get(rowid, 0.0) + 1.0 / (_RRF_K + rank)
    return sorted(scores.items(), key=lambda x: -x[1])[:k]


class ChunkStore(Protocol):
    """What the indexer and the retrievers need of an online store: SQLite (embedded, the default) or
    PostgreSQL with pgvector (features/collections/pg_online.py), chosen by `rag.online_store`."""

    def close(self) -> None: ...
    def applied(self, app_id: str) -> int | None: ...
    def versions(self) -> dict[tuple[str, str], tuple[int, bool]]: ...
    def apply(self, docs: dict[tuple[str, str], tuple[int, bool, list[ChunkRow], NDArray[np.float32]]],
              offsets: dict[str, int]) -> None: ...
    def count(self, collection: str | None = None) -> int: ...
    def listing(self, collection: str) -> list[tuple[str, int, str]]: ...
    def live_docs(self, collection: str) -> int: ...
    def vector_ids(self, collection: str, query: NDArray[np.float32], k: int) -> list[tuple[int, float]]: ...
    def bm25_ids(self, collection: str, question: str, k: int) -> list[tuple[int, float]]: ...
    def hits(self, ranked: Sequence[tuple[int, float]]) -> list[Hit]: ...
