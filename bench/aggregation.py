"""Aggregation throughput against its floor, and enforcement lag.

- throughput: the aggregator (decode, 15 cells per event, latency sketches, transactional commits of
  rows with offsets) over N telemetry events already on the broker, vs the floor: a bare confluent-kafka
  consumer decoding the same events with fastavro and doing nothing else. Event times are as dense as
  a 20,000 events/s stream makes them (5 teams, 10 projects, 15 keys, 5 models), so a batch holds many
  events per team/model/window, as it would at that rate.
- enforcement lag: telemetry produced at a steady rate while `LiveUsage` (what the budget check reads)
  follows the aggregates; lag = when a row became readable there minus the event time it includes.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from aggregation.loop import Aggregator
from bench.harness import bench_settings, write_result
from schemas import make_codec
from shared.traffic.telemetry import telemetry_events
from shared.usage.live import LiveUsage
from streamgate.config import Settings
from streamgate.kafka.clients import consumer_config, producer_config

N = 100_000


def _settings() -> Settings:
    settings: Settings = bench_settings()
    return settings


def _fill(settings: Settings, events: list[dict[str, Any]]) -> None:
    topic = settings.kafka.topic_prefix + "telemetry"
    codec = make_codec(topic, "Telemetry")
    producer = Producer(producer_config(settings, client_id="bench-fill", role="admin"))
    for e in events:
        while True:
            try:
                producer.produce(topic, codec.encode(e), e["request_id"].encode())
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(120)


def _bare(settings: Settings, *, decode: bool = True) -> float:
    """Records/s of a bare consumer that decodes each record (or, with `decode=False`, only consumes)."""
    topic = settings.kafka.topic_prefix + "telemetry"
    codec = make_codec(topic, "Telemetry")
    consumer = Consumer(consumer_config(settings, group_id=f"bare-{uuid.uuid4().hex[:6]}", role="admin"))
    parts = consumer.list_topics(topic).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    seen, t0 = 0, time.perf_counter()
    while seen < N:
        for msg in consumer.consume(2000, timeout=1.0):
            if not msg.error():
                if decode:
                    codec.decode(msg.value() or b"")
                seen += 1
    elapsed = time.perf_counter() - t0
    consumer.close()
    return N / elapsed


def _aggregate(settings: Settings) -> float:
    aggregator = Aggregator(settings, instance="bench")
    t0 = time.perf_counter()
    counts = aggregator.run(idle_exit_s=2.0)
    elapsed = time.perf_counter() - t0 - 2.0
    assert counts["events"] == N, counts
    return N / elapsed


def _lag(settings: Settings, rate: float = 1000.0, seconds: float = 15.0) -> list[float]:
    live = LiveUsage(settings, role="streams").start()
    aggregator = Aggregator(settings, instance="lag")
    thread = threading.Thread(target=aggregator.run, kwargs={"idle_exit_s": 5.0}, daemon=True)
    lags: list[float] = []
    topic = settings.kafka.topic_prefix + "telemetry"
    codec = make_codec(topic, "Telemetry")
    producer = Producer(producer_config(settings, client_id="bench-lag", role="admin"))
    try:
        thread.start()
        start, sent = time.time(), 0
        last = None
        while time.time() - start < seconds:
            due = int((time.time() - start) * rate)
            for e in telemetry_events(due - sent, start_ms=int(time.time() * 1000), span_ms=1,
                                      late_share=0, seed=sent):
                producer.produce(topic, codec.encode(e), e["request_id"].encode())
            sent = due
            producer.poll(0)
            if live.last_lag_ms is not None and live.last_lag_ms != last:
                last = live.last_lag_ms
                lags.append(last)
            time.sleep(0.01)
        producer.flush(30)
        thread.join(30)
    finally:
        live.close()
    return lags


def main() -> None:
    settings = _settings()
    now = int(time.time() * 1000)
    # event times as dense as the target rate makes them (20,000 per second), with 2% late arrivals
    span_ms = N * 1000 // 20_000
    _fill(settings, list(telemetry_events(N, start_ms=now - span_ms, span_ms=span_ms)))
    bare = _bare(settings)
    ours = _aggregate(settings)
    lag_settings = _settings()
    lags = sorted(_lag(lag_settings))
    p50 = statistics.median(lags) if lags else float("nan")
    p99 = lags[int(len(lags) * 0.99)] if lags else float("nan")
    result = {"events": N, "aggregate_events_per_s": ours, "raw_consume_events_per_s": bare,
              "ratio": ours / bare, "enforcement_lag_p50_ms": p50, "enforcement_lag_p99_ms": p99,
              "lag_samples": len(lags), "commit_interval_ms": settings.aggregation.commit_interval_ms}
    table = [
        ("aggregator (15 cells/event, sketches, transactions)", f"{ours:,.0f} events/s"),
        ("floor: bare consume + Avro decode", f"{bare:,.0f} events/s"),
        ("aggregator / floor", f"{ours / bare:.2f}"),
        ("enforcement lag p50 / p99 (1,000 events/s)", f"{p50:,.0f} ms / {p99:,.0f} ms"),
        ("target", ">= 20,000 events/s"),
    ]
    write_result("aggregation", result, table)
    for k, v in table:
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
