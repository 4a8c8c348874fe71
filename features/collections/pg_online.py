"""The collections' online store on a PostgreSQL server with pgvector: the one that outgrows one process.

The same contract as the embedded SQLite store (features/collections/online.py), so the indexer, the
request path and `streamgate rag search` take either (`rag.online_store`):

- a document's chunks are replaced, its version recorded and the source offsets applied, in one
  transaction (the indexer's exactly-once rests on that, as with SQLite);
- vectors in a `vector(384)` column with an HNSW index (cosine): approximate, so a million chunks are
  searched in milliseconds instead of the seconds sqlite-vec's exact scan takes (docs/benchmarks.md).
  pgvector 0.8's iterative index scan keeps filling the top k when the collection filter drops
  neighbours of other collections;
- keyword ranking by PostgreSQL full-text search (`ts_rank_cd` over an English `tsvector`, GIN-indexed).
  That is not BM25 (no length normalisation by the corpus average), which the hybrid's reciprocal-rank
  fusion tolerates: it uses ranks, never scores.

Every gateway replica and indexer connects to the server; none needs the indexer's disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from features.collections.online import DIM, ChunkRow, Hit, words

SCHEMA = f"""
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE IF NOT EXISTS rag_chunks(id BIGSERIAL PRIMARY KEY, collection TEXT NOT NULL,
  doc_id TEXT NOT NULL, version BIGINT NOT NULL, chunk_id TEXT NOT NULL UNIQUE, seq INTEGER NOT NULL,
  title TEXT, text TEXT NOT NULL, embedding vector({DIM}) NOT NULL,
  tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED);
CREATE INDEX IF NOT EXISTS rag_chunks_doc ON rag_chunks(collection, doc_id);
CREATE INDEX IF NOT EXISTS rag_chunks_hnsw ON rag_chunks USING hnsw (embedding vector_cosine_ops);
CREATE INDEX IF NOT EXISTS rag_chunks_tsv ON rag_chunks USING gin (tsv);
CREATE TABLE IF NOT EXISTS rag_docs(collection TEXT NOT NULL, doc_id TEXT NOT NULL, version BIGINT NOT NULL,
  deleted BOOLEAN NOT NULL, PRIMARY KEY(collection, doc_id));
CREATE TABLE IF NOT EXISTS rag_applied(app_id TEXT PRIMARY KEY, last_offset BIGINT NOT NULL);
"""


def _vector(v: NDArray[np.float32]) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(v, np.float32)) + "]"


class PgOnlineStore:
    def __init__(self, dsn: str, *, ef_search: int = 100) -> None:
        import psycopg

        self.dsn = dsn
        self.conn: Any = psycopg.connect(dsn, autocommit=True)
        with self.conn.transaction():  # two processes creating the schema at once: one waits
            self.conn.execute("SELECT pg_advisory_xact_lock(7022)")
            self.conn.execute(SCHEMA)
        self.conn.execute("SET hnsw.iterative_scan = relaxed_order")
        self.conn.execute(f"SET hnsw.ef_search = {int(ef_search)}")

    def close(self) -> None:
        self.conn.close()

    # --- the indexer's side -----------------------------------------------------------------------
    def applied(self, app_id: str) -> int | None:
        row = self.conn.execute("SELECT last_offset FROM rag_applied WHERE app_id = %s", (app_id,)).fetchone()
        return None if row is None else int(row[0])

    def versions(self) -> dict[tuple[str, str], tuple[int, bool]]:
        rows = self.conn.execute("SELECT collection, doc_id, version, deleted FROM rag_docs")
        return {(c, d): (int(v), bool(x)) for c, d, v, x in rows}

    def apply(self, docs: dict[tuple[str, str], tuple[int, bool, list[ChunkRow], NDArray[np.float32]]],
              offsets: dict[str, int]) -> None:
        """Replace each document's chunks (none when deleted) and record `offsets`, in one transaction."""
        with self.conn.transaction(), self.conn.cursor() as cur:
            for (collection, doc_id), (version, deleted, rows, vectors) in docs.items():
                cur.execute("DELETE FROM rag_chunks WHERE collection = %s AND doc_id = %s",
                            (collection, doc_id))
                cur.executemany(
                    "INSERT INTO rag_chunks(collection, doc_id, version, chunk_id, seq, title, text, "
                    "embedding) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::vector)",
                    [(r.collection, r.doc_id, r.version, r.chunk_id, r.seq, r.title, r.text, _vector(v))
                     for r, v in zip(rows, vectors, strict=True)])
                cur.execute("INSERT INTO rag_docs VALUES (%s, %s, %s, %s) ON CONFLICT (collection, doc_id) "
                            "DO UPDATE SET version = excluded.version, deleted = excluded.deleted",
                            (collection, doc_id, version, deleted))
            cur.executemany("INSERT INTO rag_applied VALUES (%s, %s) ON CONFLICT (app_id) "
                            "DO UPDATE SET last_offset = excluded.last_offset", list(offsets.items()))

    # --- the readers' side ------------------------------------------------------------------------
    def count(self, collection: str | None = None) -> int:
        if collection is None:
            return int(self.conn.execute("SELECT count(*) FROM rag_chunks").fetchone()[0])
        return int(self.conn.execute("SELECT count(*) FROM rag_chunks WHERE collection = %s",
                                     (collection,)).fetchone()[0])

    def listing(self, collection: str) -> list[tuple[str, int, str]]:
        """(doc id, version, chunk id) of every chunk of `collection`."""
        rows = self.conn.execute("SELECT doc_id, version, chunk_id FROM rag_chunks WHERE collection = %s",
                                 (collection,))
        return [(d, int(v), c) for d, v, c in rows]

    def live_docs(self, collection: str) -> int:
        return int(self.conn.execute("SELECT count(*) FROM rag_docs WHERE collection = %s AND NOT deleted",
                                     (collection,)).fetchone()[0])

    def vector_ids(self, collection: str, query: NDArray[np.float32], k: int) -> list[tuple[int, float]]:
        rows = self.conn.execute(
            "SELECT id, embedding <=> %s::vector AS d FROM rag_chunks WHERE collection = %s "
            "ORDER BY d LIMIT %s",
            (_vector(query), collection, k))
        return [(int(r), float(d)) for r, d in rows]

    def bm25_ids(self, collection: str, question: str, k: int) -> list[tuple[int, float]]:
        """Full-text matches ranked by `ts_rank_cd` (the keyword half of hybrid; see the module doc)."""
        terms = words(question)
        if not terms:
            return []
        rows = self.conn.execute(
            "SELECT id, ts_rank_cd(tsv, q) AS s FROM rag_chunks, to_tsquery('english', %s) q "
            "WHERE collection = %s AND tsv @@ q ORDER BY s DESC LIMIT %s",
            (" | ".join(terms), collection, k))
        return [(int(r), float(s)) for r, s in rows]

    def hits(self, ranked: Sequence[tuple[int, float]]) -> list[Hit]:
        if not ranked:
            return []
        rows = {r[0]: r for r in self.conn.execute(
            "SELECT id, collection, doc_id, version, chunk_id, title, text FROM rag_chunks "
            "WHERE id = ANY(%s)",
            ([i for i, _ in ranked],))}
        return [Hit(rows[i][1], rows[i][2], int(rows[i][3]), rows[i][4], rows[i][5], rows[i][6], s)
                for i, s in ranked if i in rows]
