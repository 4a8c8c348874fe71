"""The feature store: freshness of pushed features, online read latency, RAG retrieval quality.

- freshness: telemetry produced at a steady rate (event time = produce time) through the aggregator
  and the push worker (default 1 s push interval) until a team's spend, read from the online store,
  includes it; lag = first online read that includes an event minus the event's time.
- online reads: `get_online_features` of one entity (provider_health, 3 features), SQLite and, when
  redis-server is installed, Redis; the gateway readers cache these for `read_cache_s`.
- RAG: recall@5 of `retrieve_online_documents_v2` (MiniLM + sqlite-vec) over README.md and docs/*.md
  on bench/data/rag_questions.jsonl (hand-labeled: the sections that answer each question).
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from confluent_kafka import Producer
from feast import FeatureStore

from aggregation.loop import Aggregator
from bench.harness import ROOT, bench_settings, read_jsonl, write_result
from features.local_redis import LocalRedis
from features.push import FeaturePusher
from features.rag import DocsRetriever, index_docs, recall_at_k
from features.store import apply
from schemas import make_codec
from shared.embeddings.minilm import MiniLM
from shared.traffic.telemetry import telemetry_events
from streamgate.config import Settings
from streamgate.kafka.clients import producer_config

RATE, SECONDS, TEAM = 200.0, 20.0, "bench-fresh"


def _freshness(settings: Settings) -> list[float]:
    pusher = FeaturePusher(settings).start()
    aggregator = Aggregator(settings, instance="features-bench")
    threading.Thread(target=aggregator.run, kwargs={"idle_exit_s": 8.0}, daemon=True).start()
    threading.Thread(target=pusher.run, daemon=True).start()
    topic = settings.kafka.topic_prefix + "telemetry"
    codec = make_codec(topic, "Telemetry")
    producer = Producer(producer_config(settings, client_id="fb", role="admin"))
    batches: list[tuple[int, int]] = []  # (event time ms, cumulative spend including this batch)
    lags: list[float] = []
    done = threading.Event()

    def read() -> None:
        matched = 0
        while not done.is_set() or matched < len(batches):
            got = pusher.store.get_online_features(["team_usage:spend_today_nanousd"], [{"team": TEAM}])
            value, now = got.to_dict()["spend_today_nanousd"][0] or 0, time.time() * 1000
            while matched < len(batches) and batches[matched][1] <= value:
                lags.append(now - batches[matched][0])
                matched += 1
            time.sleep(0.02)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        start, sent, spend = time.time(), 0, 0
        while time.time() - start < SECONDS:
            due = int((time.time() - start) * RATE)
            at = int(time.time() * 1000)
            for e in telemetry_events(due - sent, start_ms=at, span_ms=1, late_share=0, seed=sent):
                e |= {"team": TEAM, "ended_at": at}
                spend += e["cost_nanousd"]
                producer.produce(topic, codec.encode(e), e["request_id"].encode())
            if due > sent:
                producer.poll(0)
                batches.append((at, spend))
            sent = due
            time.sleep(0.05)
        producer.flush(30)
        done.set()
        reader.join(60)
    finally:
        pusher.close()
    return lags


def _reads(store: FeatureStore, n: int = 300) -> tuple[float, float]:
    store.push("provider_health_push", pd.DataFrame({
        "target": ["bench/model"], "event_timestamp": [datetime.now(UTC)], "latency_p50_ms": [1.0],
        "latency_p95_ms": [2.0], "error_rate": [0.0], "attempts_5m": [1]}))
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        store.get_online_features(["provider_health:latency_p95_ms", "provider_health:error_rate",
                                   "provider_health:attempts_5m"], [{"target": "bench/model"}])
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[int(n * 0.99)]


def _redis_reads(settings: Settings, workdir: Path) -> tuple[float, float] | None:
    if not LocalRedis.available():
        return None
    with LocalRedis(workdir / "redis-server") as server:
        features = settings.features.model_copy(update={"online_store": "redis", "redis_url": server.url})
        redis_settings = settings.model_copy(update={"features": features, "state_dir": workdir / "redis"})
        return _reads(apply(redis_settings)[0])


def _recall(settings: Settings, store: FeatureStore) -> tuple[float, int, int, float]:
    """Recall@5, questions, chunks, and the median cost of adding context to one tagged request (ms)."""
    embedder = MiniLM(settings.dispatch.cache.semantic.model_dir)
    chunks = index_docs(settings, store, embedder=embedder)
    questions: list[dict[str, Any]] = read_jsonl(ROOT / "data" / "rag_questions.jsonl")
    retriever, costs = DocsRetriever(store, embedder), []
    for q in questions:
        t0 = time.perf_counter()
        retriever.passages("docs", q["question"])
        costs.append((time.perf_counter() - t0) * 1000)
    return recall_at_k(store, embedder, questions, 5), len(questions), chunks, statistics.median(costs)


def main() -> None:
    base = bench_settings()  # the local broker, started if needed, under its usual state directory
    with tempfile.TemporaryDirectory() as tmp:
        kafka = base.kafka.model_copy(update={"bootstrap_servers": base.kafka.bootstrap()})
        settings = base.model_copy(update={"kafka": kafka}).with_state_dir(Path(tmp))
        lags = sorted(_freshness(settings))
        store = apply(settings)[0]
        sqlite_p50, sqlite_p99 = _reads(store)
        on_redis = _redis_reads(settings, Path(tmp))
        recall, questions, chunks, context_ms = _recall(settings, store)
    p50, p95 = statistics.median(lags), lags[int(len(lags) * 0.95)]
    result = {"freshness_lag_p50_ms": p50, "freshness_lag_p95_ms": p95, "freshness_lag_max_ms": lags[-1],
              "freshness_samples": len(lags), "push_interval_s": settings.features.push_interval_s,
              "online_read_sqlite_p50_ms": sqlite_p50, "online_read_sqlite_p99_ms": sqlite_p99,
              "online_read_redis_p50_ms": on_redis and on_redis[0],
              "online_read_redis_p99_ms": on_redis and on_redis[1],
              "rag_recall_at_5": recall, "rag_questions": questions, "rag_chunks": chunks,
              "rag_context_per_request_p50_ms": context_ms}
    table = [
        (f"freshness lag p50 / p95 / max ({RATE:.0f} events/s, push every "
         f"{settings.features.push_interval_s:g} s)", f"{p50:,.0f} / {p95:,.0f} / {lags[-1]:,.0f} ms"),
        ("online read, 1 entity x 3 features, SQLite p50 / p99", f"{sqlite_p50:.1f} / {sqlite_p99:.1f} ms"),
        ("online read, Redis p50 / p99",
         f"{on_redis[0]:.1f} / {on_redis[1]:.1f} ms" if on_redis else "redis-server not installed"),
        (f"RAG recall@5 ({questions} labeled questions, {chunks} chunks)", f"{recall:.2f}"),
        ("RAG context for one tagged request (embed + vector query) p50", f"{context_ms:.0f} ms"),
    ]
    write_result("features", result, table)
    for k, v in table:
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
