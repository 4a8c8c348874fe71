"""RAG retrieval latency by online store and collection size: the embedded SQLite store (sqlite-vec exact
search, FTS5 BM25) against the server store (PostgreSQL + pgvector HNSW, full-text ranking), the same
synthetic chunks and the same queries, in one run.

The chunks are synthetic (unit vectors, Zipf-distributed words, as `bench rag --scale` makes them):
embedding real text at this machine's ~14 chunks/s would take a day per million. Vector and hybrid
latencies include embedding the question (MiniLM, one thread), as the request path pays it. HNSW is
approximate: on random vectors, which have no cluster structure, its recall is lower than on real
embeddings; the figures here are latency, not quality (`bench rag` measures quality).

Each size is loaded once into each store (the PostgreSQL HNSW index is built after the load, as a bulk
load should be; its build time is reported), then queried `--queries` times per mode.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from bench.harness import bench_settings, write_result
from bench.rag import COLLECTION, MODES, _words, search_latency
from features.collections.online import ChunkStore, OnlineStore
from features.collections.pg_online import PgOnlineStore
from features.collections.pg_server import LocalPostgres
from features.collections.retriever import CollectionRetriever
from shared.embeddings.minilm import MiniLM

PER_DOC, BATCH = 10, 20_000
Batch = tuple[int, np.ndarray, list[str]]


def synthetic(n: int, seed: int = 7) -> Iterator[Batch]:
    """(first id, unit vectors, texts) in batches: the same chunks for every store."""
    rng = np.random.default_rng(seed)
    for start in range(0, n, BATCH):
        size = min(BATCH, n - start)
        vectors = rng.standard_normal((size, 384), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        texts = [" ".join(f"w{w}" for w in row) for row in _words(rng, (size, 60))]
        yield start, vectors, texts


def load_sqlite(path: Path, n: int) -> tuple[OnlineStore, dict[str, float]]:
    store = OnlineStore(path)
    began, conn = time.perf_counter(), store.conn
    conn.execute("BEGIN")
    for start, vectors, texts in synthetic(n):
        ids = range(start + 1, start + 1 + len(texts))
        conn.executemany("INSERT INTO chunks VALUES (?, ?, ?, 1, ?, ?, NULL, ?)",
                         [(i, COLLECTION, f"d{(i - 1) // PER_DOC}", f"c{i}", (i - 1) % PER_DOC, t)
                          for i, t in zip(ids, texts, strict=True)])
        conn.executemany("INSERT INTO vec_chunks(rowid, collection, embedding) VALUES (?, ?, ?)",
                         [(i, COLLECTION, v.tobytes()) for i, v in zip(ids, vectors, strict=True)])
        conn.executemany("INSERT INTO fts_chunks(rowid, text, collection) VALUES (?, ?, ?)",
                         [(i, t, COLLECTION) for i, t in zip(ids, texts, strict=True)])
    conn.execute("COMMIT")
    return store, {"load_s": round(time.perf_counter() - began, 1), "index_s": 0.0,
                   "size_mb": round(path.stat().st_size / 1e6)}


def load_postgres(dsn: str, n: int) -> tuple[PgOnlineStore, dict[str, float]]:
    store = PgOnlineStore(dsn)
    conn = store.conn
    conn.execute("DROP INDEX IF EXISTS rag_chunks_hnsw")  # built once after the bulk load
    began = time.perf_counter()
    sql = "COPY rag_chunks(collection, doc_id, version, chunk_id, seq, text, embedding) FROM STDIN"
    with conn.cursor() as cur, cur.copy(sql) as copy:
        for start, vectors, texts in synthetic(n):
            for j, (v, t) in enumerate(zip(vectors, texts, strict=True)):
                i = start + j
                copy.write_row((COLLECTION, f"d{i // PER_DOC}", 1, f"c{i + 1}", i % PER_DOC, t,
                                "[" + ",".join(f"{x:.6f}" for x in v) + "]"))
    loaded = time.perf_counter()
    conn.execute("SET maintenance_work_mem = '2GB'")
    conn.execute("SET max_parallel_maintenance_workers = 1")
    conn.execute("CREATE INDEX rag_chunks_hnsw ON rag_chunks USING hnsw (embedding vector_cosine_ops)")
    conn.execute("VACUUM ANALYZE rag_chunks")
    size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    return store, {"load_s": round(loaded - began, 1), "index_s": round(time.perf_counter() - loaded, 1),
                   "size_mb": round(size / 1e6)}


def latency(store: ChunkStore, embedder: MiniLM, queries: int) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(11)
    questions = [" ".join(f"w{w}" for w in _words(rng, (6,))) for _ in range(queries)]
    retriever = CollectionRetriever(store, embedder, candidates=20)
    out: dict[str, dict[str, float]] = {}
    for mode in MODES:
        retriever.search(COLLECTION, questions[0], 5, mode)  # warm the caches once
        out[mode] = search_latency(retriever, questions, mode)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench rag-scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated chunk counts")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--stores", default="sqlite,postgres")
    args = parser.parse_args(argv or [])
    threadpool_limits(1)
    embedder = MiniLM(bench_settings().dispatch.cache.semantic.model_dir)
    sizes, stores = [int(s) for s in args.sizes.split(",")], args.stores.split(",")
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, LocalPostgres() as server:
        for n in sizes:
            for name in stores:
                store: ChunkStore
                if name == "postgres":
                    store, loaded = load_postgres(server.new_database(), n)
                else:
                    store, loaded = load_sqlite(Path(tmp) / f"scale-{n}.db", n)
                runs.append({"store": name, "chunks": n, **loaded, **latency(store, embedder, args.queries)})
                store.close()
                print(runs[-1], flush=True)
    table = []
    for r in runs:
        what = (f"{r['store']} at {r['chunks']:,} chunks (load {r['load_s']:.0f} s"
                + (f", HNSW build {r['index_s']:.0f} s" if r["index_s"] else "") + f", {r['size_mb']:,} MB)")
        table.append((f"{what}: {' / '.join(MODES)} p50 / p99 ms",
                      " · ".join(f"{r[m]['p50_ms']:.1f} / {r[m]['p99_ms']:.1f}" for m in MODES)))
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    table.append(("load average at the end (1 / 5 / 15 min; 2 cores, shared with other work)", load))
    write_result("rag-scale", {"runs": runs, "queries": args.queries, "load_average": os.getloadavg()}, table)
    for k, v in table:
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
