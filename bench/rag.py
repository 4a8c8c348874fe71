"""RAG collections: retrieval quality (hybrid vs BM25 vs vectors), freshness, ingest rate, latency at scale.

- Quality: nDCG@10 and recall@5 of BM25 alone (SQLite FTS5), vectors alone (MiniLM + sqlite-vec) and the
  hybrid the gateway serves (reciprocal-rank fusion), in the same run, on the same index. The set is a
  BEIR-format folder (`--beir DIR`: corpus.jsonl, queries.jsonl, qrels/test.tsv, as every BEIR set is
  published). No package on the registries this machine reaches ships one, and the machine reaches no
  other host, so without `--beir` the run scores the project's own labeled docs questions instead and
  says so in its table (those were written by the team, beside the docs: a weaker test).
- Freshness: a document event produced to its chunks retrievable from the online store, p50/p99, with
  the indexer (RagIndexer, its shipped batch settings) running on the local broker.
- Ingest: chunks/s through the indexer (consume, chunk, embed, Delta MERGE, SQLite), from the first
  record buffered to the last commit; the embedding's share is measured apart.
- Retrieval latency at scale: p50/p99 of vector, BM25 and hybrid queries over `--scale` chunks (synthetic
  unit vectors and text: embedding a million real chunks would take this machine a day).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from bench.harness import ROOT, bench_settings, drop_at_exit, read_jsonl, write_result
from features.collections.chunking import chunk
from features.collections.indexer import RagIndexer, online_path
from features.collections.ingest import DocumentProducer, document_event
from features.collections.online import ChunkRow, OnlineStore
from features.collections.retriever import CollectionRetriever, Mode
from features.rag import chunk_markdown, default_docs
from shared.embeddings.minilm import MiniLM
from shared.policy.config import load_policy
from shared.policy.holder import PolicyHolder
from streamgate.config import Settings

COLLECTION = "support-kb"  # declared in config/gateway.yaml
MODES: tuple[Mode, ...] = ("bm25", "vector", "hybrid")


# --- quality ------------------------------------------------------------------------------------------
Judged = tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]


def load_beir(folder: Path, max_queries: int) -> Judged:
    """(corpus id -> text, query id -> text, query id -> {doc id: grade}) of a BEIR folder."""
    corpus = {}
    for row in read_jsonl(folder / "corpus.jsonl"):
        corpus[str(row["_id"])] = f"{row.get('title') or ''}\n{row['text']}".strip()
    queries = {str(r["_id"]): r["text"] for r in read_jsonl(folder / "queries.jsonl")}
    qrels: dict[str, dict[str, int]] = {}
    for line in (folder / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        qid, did, grade = line.split("\t")[:3]
        if int(grade) > 0 and qid in queries:
            qrels.setdefault(qid, {})[did] = int(grade)
    chosen = sorted(qrels)[:max_queries]
    return corpus, {q: queries[q] for q in chosen}, {q: qrels[q] for q in chosen}


def docs_questions() -> Judged:
    """The project's docs as a corpus (one document per section, `file#heading`) and its labeled questions."""
    corpus: dict[str, str] = {}
    for path in default_docs():
        for c in chunk_markdown(path.name, path.read_text()):
            corpus[c.source] = f"{corpus.get(c.source, '')}\n\n{c.text}".strip()
    rows = read_jsonl(ROOT / "data" / "rag_questions.jsonl")
    queries = {str(i): str(r["question"]) for i, r in enumerate(rows)}
    qrels = {str(i): {s: 1 for s in r["sources"] if s in corpus} for i, r in enumerate(rows)}
    return corpus, queries, {q: rel for q, rel in qrels.items() if rel}


def ndcg_at(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    dcg = sum((2 ** relevant.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum((2 ** g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    return len(set(ranked[:k]) & set(relevant)) / len(relevant)


def index_corpus(store: OnlineStore, embedder: MiniLM, corpus: dict[str, str], chunk_chars: int = 900) -> int:
    """Every document cut and embedded as the indexer does (no Kafka here: this measures retrieval)."""
    batch: dict[tuple[str, str], Any] = {}
    chunks = 0
    for n, (doc_id, text) in enumerate(corpus.items(), 1):
        passages = chunk(text, title=None, markdown=False, max_chars=chunk_chars, overlap=100)
        rows = [ChunkRow(COLLECTION, doc_id, 1, f"{doc_id}#{p.seq}", p.seq, None, p.text) for p in passages]
        batch[(COLLECTION, doc_id)] = (1, False, rows, embedder.embed([r.text for r in rows]))
        chunks += len(rows)
        if len(batch) >= 64 or n == len(corpus):
            store.apply(batch, {})
            batch = {}
    return chunks


def quality(embedder: MiniLM, corpus: dict[str, str], queries: dict[str, str],
            qrels: dict[str, dict[str, int]], workdir: Path) -> dict[str, Any]:
    store = OnlineStore(workdir / "quality.db")
    began = time.perf_counter()
    chunks = index_corpus(store, embedder, corpus)
    embed_s = time.perf_counter() - began
    retriever = CollectionRetriever(store, embedder, candidates=50)
    out: dict[str, Any] = {"documents": len(corpus), "queries": len(queries), "chunks": chunks,
                           "index_s": round(embed_s, 1)}
    for mode in MODES:
        ndcg, recall, ms = [], [], []
        for qid, question in queries.items():
            t0 = time.perf_counter()
            hits = retriever.search(COLLECTION, question, 30, mode)
            ms.append((time.perf_counter() - t0) * 1000)
            ranked = list(dict.fromkeys(h.doc_id for h in hits))  # a document ranks where its best chunk does
            ndcg.append(ndcg_at(ranked, qrels[qid], 10))
            recall.append(recall_at(ranked, qrels[qid], 5))
        out[mode] = {"ndcg_at_10": round(statistics.fmean(ndcg), 4),
                     "recall_at_5": round(statistics.fmean(recall), 4),
                     "query_p50_ms": round(statistics.median(ms), 2)}
    store.close()
    return out


# --- freshness and ingest through the indexer ---------------------------------------------------------
def _runbook(i: int) -> str:
    return (f"# Runbook {i}\n\n" + " ".join(f"Step {s}: check service {i} component {s} and restart it if "
                                           "its health endpoint fails." for s in range(12))
            + f"\n\n## Escalation\n\nPage team {i % 9} when a restart does not help in {i % 30} minutes.")


def through_indexer(settings: Settings, docs: int, fresh_docs: int, rate: float) -> dict[str, Any]:
    """Ingest `docs` runbooks (throughput), then `fresh_docs` one at a time at `rate`/s (freshness)."""
    holder = PolicyHolder(load_policy())
    embedder = MiniLM(settings.dispatch.cache.semantic.model_dir)
    indexer = RagIndexer(settings, holder, embedder=embedder)
    producer = DocumentProducer(settings)
    for i in range(docs):
        producer.send(document_event(COLLECTION, f"bulk-{i}.md", 1, text=_runbook(i),
                                     content_type="text/markdown"))
    producer.flush()
    worker = threading.Thread(target=indexer.run, daemon=True)
    worker.start()
    reader = OnlineStore(online_path(settings))

    def indexed(prefix: str) -> int:
        return int(reader.conn.execute("SELECT count(*) FROM docs WHERE doc_id LIKE ?", (f"{prefix}%",))
                   .fetchone()[0])

    deadline = time.monotonic() + 1800
    while indexed("bulk-") < docs and time.monotonic() < deadline:
        time.sleep(0.2)
    assert indexer.first_record_at is not None and indexer.last_commit_at is not None
    bulk_chunks = indexer.counts["chunks"]
    bulk_s = indexer.last_commit_at - indexer.first_record_at
    sample = [_runbook(i) for i in range(32)]
    texts = [p.text for t in sample for p in chunk(t, title=None, markdown=True, max_chars=900, overlap=100)]
    t0 = time.perf_counter()
    embedder.embed(texts)
    embed_rate = len(texts) / (time.perf_counter() - t0)

    lags: list[float] = []
    for i in range(fresh_docs):
        doc = f"fresh-{i}.md"
        event = document_event(COLLECTION, doc, 1, text=_runbook(1000 + i), content_type="text/markdown")
        producer.send(event)
        producer.flush()
        while time.monotonic() < deadline:
            row = reader.conn.execute("SELECT 1 FROM chunks WHERE collection = ? AND doc_id = ? LIMIT 1",
                                      (COLLECTION, doc)).fetchone()
            if row:
                lags.append(time.time() * 1000 - event["produced_at"])
                break
            time.sleep(0.005)
        time.sleep(max(0.0, 1 / rate - 0.005))
    indexer.running = False
    worker.join(60)
    indexer.close()
    reader.close()
    lags.sort()
    return {"ingest_docs": docs, "ingest_chunks": bulk_chunks, "ingest_s": round(bulk_s, 1),
            "ingest_chunks_per_s": round(bulk_chunks / bulk_s, 1),
            "embed_only_chunks_per_s": round(embed_rate, 1),
            "freshness_samples": len(lags), "freshness_p50_ms": round(statistics.median(lags)),
            "freshness_p99_ms": round(lags[min(len(lags) - 1, int(len(lags) * 0.99))]),
            "batch_docs": settings.rag.batch_docs, "flush_s": settings.rag.flush_s}


# --- latency at scale ---------------------------------------------------------------------------------
#: a synthetic vocabulary with Zipf-like frequencies, so BM25's posting lists are as long as in real text
_VOCAB = 20_000


def _words(rng: np.random.Generator, shape: tuple[int, ...]) -> Any:
    return np.minimum(rng.zipf(1.3, shape), _VOCAB) - 1


def search_latency(retriever: CollectionRetriever, questions: list[str], mode: Mode) -> dict[str, float]:
    """p50 / p99 ms of top-5 searches of `questions` in one retrieval mode (embedding included)."""
    ms = []
    for q in questions:
        t0 = time.perf_counter()
        retriever.search(COLLECTION, q, 5, mode)
        ms.append((time.perf_counter() - t0) * 1000)
    ms.sort()
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return {"p50_ms": round(statistics.median(ms), 1), "p99_ms": round(p99, 1)}


def at_scale(n: int, workdir: Path, queries: int, embedder: MiniLM) -> dict[str, Any]:
    """p50/p99 of each retrieval mode over `n` synthetic chunks in one collection."""
    store = OnlineStore(workdir / "scale.db")
    rng = np.random.default_rng(7)
    began = time.perf_counter()
    conn, per_doc, batch = store.conn, 10, 20_000
    conn.execute("BEGIN")
    for start in range(0, n, batch):
        size = min(batch, n - start)
        vectors = rng.standard_normal((size, 384), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        words = _words(rng, (size, 60))
        rows = []
        for j in range(size):
            i = start + j
            rows.append((i + 1, COLLECTION, f"d{i // per_doc}", 1, f"c{i}", i % per_doc, None,
                         " ".join(f"w{w}" for w in words[j]), vectors[j].tobytes()))
        conn.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [r[:8] for r in rows])
        conn.executemany("INSERT INTO vec_chunks(rowid, collection, embedding) VALUES (?, ?, ?)",
                         [(r[0], COLLECTION, r[8]) for r in rows])
        conn.executemany("INSERT INTO fts_chunks(rowid, text, collection) VALUES (?, ?, ?)",
                         [(r[0], r[7], COLLECTION) for r in rows])
    conn.execute("COMMIT")
    load_s = time.perf_counter() - began
    retriever = CollectionRetriever(store, embedder, candidates=20)
    questions = [" ".join(f"w{w}" for w in _words(rng, (6,))) for _ in range(queries)]
    out: dict[str, Any] = {"chunks": n, "load_s": round(load_s, 1),
                           "db_mb": round((workdir / "scale.db").stat().st_size / 1e6)}
    for mode in MODES:
        out[mode] = search_latency(retriever, questions, mode)
    store.close()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench rag", description=__doc__.split("\n\n")[0])
    parser.add_argument("--beir", type=Path,
                        help="a BEIR-format folder (corpus.jsonl, queries.jsonl, qrels/test.tsv)")
    parser.add_argument("--max-queries", type=int, default=300)
    parser.add_argument("--docs", type=int, default=200, help="documents for the ingest rate")
    parser.add_argument("--fresh", type=int, default=60, help="documents for freshness, one at a time")
    parser.add_argument("--scale", type=int, default=1_000_000, help="chunks for the latency at scale")
    parser.add_argument("--scale-queries", type=int, default=200)
    args = parser.parse_args(argv or [])
    threadpool_limits(1)  # as the indexer and the request path run the embedder
    base = bench_settings()
    embedder = MiniLM(base.dispatch.cache.semantic.model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.beir:
            corpus, queries, qrels = load_beir(args.beir, args.max_queries)
            dataset = f"BEIR {args.beir.name} (test, {len(queries)} queries)"
        else:
            corpus, queries, qrels = docs_questions()
            dataset = (f"the project's docs questions ({len(queries)}; written by the team: no public set "
                       "is reachable from this machine)")
        scored = quality(embedder, corpus, queries, qrels, work)
        kafka = base.kafka.model_copy(update={"bootstrap_servers": base.kafka.bootstrap(),
                                              "topic_prefix": f"benchrag{uuid.uuid4().hex[:6]}."})
        settings = base.model_copy(update={"kafka": kafka}).with_state_dir(work / "state")
        from streamgate.kafka.topics import apply_spec

        apply_spec(settings)
        drop_at_exit(settings)
        flow = through_indexer(settings, args.docs, args.fresh, rate=2.0)
        scale = at_scale(args.scale, work, args.scale_queries, embedder)
    import os

    result = {"dataset": dataset, "quality": scored, "indexer": flow, "scale": scale,
              "load_average": os.getloadavg()}
    table = [(f"{mode}: nDCG@10 / recall@5 on {dataset}",
              f"{scored[mode]['ndcg_at_10']:.3f} / {scored[mode]['recall_at_5']:.3f}") for mode in MODES]
    table += [
        (f"ingest through the indexer ({flow['ingest_docs']} docs, {flow['ingest_chunks']} chunks; embedding "
         f"alone {flow['embed_only_chunks_per_s']:.0f} chunks/s)",
         f"{flow['ingest_chunks_per_s']:.1f} chunks/s"),
        (f"freshness: document produced -> retrievable, p50 / p99 ({flow['freshness_samples']} docs, "
         f"batch {flow['batch_docs']} / {flow['flush_s']} s)",
         f"{flow['freshness_p50_ms']:,} / {flow['freshness_p99_ms']:,} ms"),
    ]
    table += [(f"{mode} retrieval at {scale['chunks']:,} chunks (synthetic; embedding included for "
               "vector/hybrid) p50 / p99", f"{scale[mode]['p50_ms']:.1f} / {scale[mode]['p99_ms']:.1f} ms")
              for mode in MODES]
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    table.append(("load average at the end (1 / 5 / 15 min; 2 cores, shared with other work)", load))
    write_result("rag", result, table)
    for k, v in table:
        print(f"{k}: {v}")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
