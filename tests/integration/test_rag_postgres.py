"""The server vector store against a real PostgreSQL with pgvector (started by the `postgres_server`
fixture, no broker): the collections' store keeps the SQLite store's contract (versions replace, deletions
remove, offsets in the same transaction, the same answers in every retrieval mode), and Feast's own
PostgreSQL online store serves the stream-pushed features and the docs' vector search from it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
from numpy.typing import NDArray

from features.collections.chunking import chunk
from features.collections.online import ChunkRow, ChunkStore, OnlineStore
from features.collections.pg_online import PgOnlineStore
from features.collections.retriever import CollectionRetriever, Mode
from features.rag import index_docs, retrieve
from features.serving import FeastHealth
from features.store import apply
from shared.embeddings.minilm import MiniLM
from streamgate.config import Settings, load_settings

KB = "support-kb"
DOCS = {
    "refunds.md": "# Refunds\n\nRefunds are paid within five business days to the card used for the order.",
    "outage.md": "# Outages\n\nDuring an outage, post on the status page first, then page the on-call.",
    "invoices.md": "# Invoices\n\nInvoices are e-mailed on the first day of each month as PDF files.",
    "passwords.md": "# Passwords\n\nA forgotten password is reset from the sign-in page with a mailed link.",
}
QUESTIONS = {"How long does a refund take?": "refunds.md", "Where do I download my monthly invoice?":
             "invoices.md", "What do we post on the status page during an outage?": "outage.md"}


@pytest.fixture(scope="module")
def embedder() -> MiniLM:
    return MiniLM(load_settings().dispatch.cache.semantic.model_dir)


def _doc(embedder: MiniLM, doc_id: str, version: int, text: str,
         collection: str = KB) -> tuple[int, bool, list[ChunkRow], NDArray[np.float32]]:
    rows = [ChunkRow(collection, doc_id, version, f"{doc_id}@{version}#{c.seq}", c.seq, None, c.text)
            for c in chunk(text, title=None, markdown=True, max_chars=900, overlap=100)]
    return version, False, rows, embedder.embed([r.text for r in rows])


def _fill(store: ChunkStore, embedder: MiniLM) -> None:
    store.apply({(KB, d): _doc(embedder, d, 1, t) for d, t in DOCS.items()}, {"p0": 3})
    store.apply({(KB, "refunds.md"): _doc(embedder, "refunds.md", 2, DOCS["refunds.md"] + " Ask billing."),
                 (KB, "passwords.md"): (3, True, [], np.zeros((0, 384), np.float32))}, {"p0": 7})
    store.apply({("other-kb", "refunds.md"): _doc(embedder, "refunds.md", 1, "Refunds take a year here.",
                                                            "other-kb")},
                {"p1": 0})


def test_postgres_store_keeps_the_sqlite_contract(postgres_dsn: str, embedder: MiniLM,
                                                   tmp_path: Path) -> None:
    pg, lite = PgOnlineStore(postgres_dsn), OnlineStore(tmp_path / "online.db")
    try:
        for store in (pg, lite):
            _fill(store, embedder)
        assert sorted(pg.listing(KB)) == sorted(lite.listing(KB))
        assert {d: v for d, v, _ in pg.listing(KB)} == {"refunds.md": 2, "outage.md": 1, "invoices.md": 1}
        assert pg.versions() == lite.versions() and pg.versions()[(KB, "passwords.md")] == (3, True)
        assert (pg.applied("p0"), pg.applied("p1"), pg.applied("p2")) == (7, 0, None)
        assert (pg.count(KB), pg.live_docs(KB), pg.count()) == (3, 3, 4)
        modes: tuple[Mode, ...] = ("vector", "bm25", "hybrid")
        for m in modes:
            for question, doc in QUESTIONS.items():
                got = [CollectionRetriever(s, embedder).search(KB, question, 2, m) for s in (pg, lite)]
                assert got[0][0].doc_id == got[1][0].doc_id == doc, (m, question)
                assert all(h.collection == KB for h in got[0])  # never another collection's chunk
        [top] = CollectionRetriever(pg, embedder).search(KB, "How long does a refund take?", 1)
        assert top.version == 2 and "Ask billing" in top.text  # the new version replaced the old one
    finally:
        pg.close()
        lite.close()


def test_a_failed_batch_leaves_nothing_behind(postgres_dsn: str, embedder: MiniLM) -> None:
    """The chunks and the offsets commit together or not at all (what the indexer's exactly-once needs)."""
    store = PgOnlineStore(postgres_dsn)
    try:
        store.apply({(KB, "refunds.md"): _doc(embedder, "refunds.md", 1, DOCS["refunds.md"])}, {"p0": 1})
        version, deleted, rows, vectors = _doc(embedder, "outage.md", 1, DOCS["outage.md"])
        with pytest.raises(psycopg.errors.DataException):  # a vector of the wrong length fails the batch
            store.apply({(KB, "outage.md"): (version, deleted, rows, vectors[:, :10])}, {"p0": 2})
        assert store.applied("p0") == 1 and [d for d, _, _ in store.listing(KB)] == ["refunds.md"]
    finally:
        store.close()


def test_feast_postgres_online_store_serves_features_and_vector_search(
        postgres_dsn: str, embedder: MiniLM, tmp_path: Path) -> None:
    base = load_settings()
    features = base.features.model_copy(update={"online_store": "postgres", "postgres_dsn": postgres_dsn})
    settings: Settings = base.model_copy(update={"state_dir": tmp_path / "state", "features": features})
    store, _ = apply(settings)
    with psycopg.connect(postgres_dsn) as conn:  # Feast's own tables, in the server, with pgvector
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        vector_type = conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attname = 'vector_value' "
            "AND attrelid = (SELECT oid FROM pg_class WHERE relname LIKE '%doc_chunks' LIMIT 1)").fetchone()
    assert vector_type is not None
    assert any(t.endswith("provider_health") for t in tables) and vector_type[0].startswith("vector")
    store.push("provider_health_push", pd.DataFrame({
        "target": ["sim/a"], "event_timestamp": [datetime.now(UTC)], "latency_p50_ms": [1.0],
        "latency_p95_ms": [77.0], "error_rate": [0.25], "attempts_5m": [3]}))
    health = FeastHealth(store, 0).get("sim", "a")
    assert health is not None and health.error_rate == 0.25
    readme = Path(__file__).resolve().parents[2] / "README.md"
    assert index_docs(settings, store, [readme], embedder) > 10
    hits = retrieve(store, embedder, "Which environment variables override the configuration file?", 5)
    assert "README.md#Configuration" in [h.source for h in hits]
