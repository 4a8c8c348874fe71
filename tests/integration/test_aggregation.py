"""The aggregator against the real broker: totals equal an offline recomputation, exactly, even after
kill -9 at random moments; bad records are dead-lettered; budgets read what it counts."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from typer.testing import CliRunner

from aggregation.restore import read_committed_rows
from apps.cli.main import app
from schemas import make_codec
from shared.traffic.telemetry import telemetry_events
from shared.usage.live import LiveUsage, totals
from shared.usage.windows import dimension_values
from streamgate.config import Settings
from streamgate.kafka.clients import consumer_config, producer_config
from tests.helpers.aggregation import AggregatorProcess

pytestmark = pytest.mark.kafka
FIELDS = ("requests", "attempts", "errors", "cache_hits", "prompt_tokens", "completion_tokens",
          "cost_nanousd")


def _produce(settings: Settings, topic: str, events: list[dict[str, Any]], junk: int = 0) -> None:
    codec = make_codec(topic, "Telemetry")
    producer = Producer(producer_config(settings, client_id="t", role="admin"))
    for e in events:
        producer.produce(topic, codec.encode(e), e["request_id"].encode())
        producer.poll(0)
    for i in range(junk):
        producer.produce(topic, b"\x00not avro" + bytes([i]), b"junk")
    assert producer.flush(30) == 0


def _offline(events: list[dict[str, Any]]) -> dict[tuple[str, str], Counter[str]]:
    """What the aggregates must add up to, per dimension value, recomputed from the raw events."""
    out: dict[tuple[str, str], Counter[str]] = {}
    for e in events:
        for dim in dimension_values(e):
            c = out.setdefault(dim, Counter())
            c["requests"] += e["attempt"] == 1
            c["attempts"] += 1
            c["errors"] += e["status"] != "ok"
            c["cache_hits"] += e["cache_hit"]
            for f in ("prompt_tokens", "completion_tokens", "cost_nanousd"):
                c[f] += e[f]
    return out


def _aggregated(settings: Settings, topic: str, window: str) -> dict[tuple[str, str], Counter[str]]:
    out: dict[tuple[str, str], Counter[str]] = {}
    rows = read_committed_rows(settings, topic, make_codec(topic, "UsageAggregate"))
    for (w, _, dim, value), total in totals(rows).items():
        if w == window:
            c = out.setdefault((dim, value), Counter())
            for f in FIELDS:
                c[f] += total.counts[f]
    return out


def _wait_caught_up(settings: Settings, topic: str, timeout_s: float = 240) -> None:
    group = settings.kafka.topic_prefix + settings.aggregation.group_id
    consumer = Consumer(consumer_config(settings, group_id=group, role="admin"))
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            committed = consumer.committed([TopicPartition(topic, p) for p in parts], timeout=10)
            if all(tp.offset >= ends[tp.partition] for tp in committed):
                return
            time.sleep(0.5)
        raise AssertionError(f"aggregator did not commit to the end of {topic} in {timeout_s} s")
    finally:
        consumer.close()


@pytest.fixture
def aggregator(settings: Settings, topics: dict[str, str], tmp_path: Path) -> Any:
    proc = AggregatorProcess(settings, tmp_path)
    yield proc
    proc.stop()


def test_kill_9_at_random_moments_keeps_totals_exact(settings: Settings, topics: dict[str, str],
                                                     aggregator: AggregatorProcess) -> None:
    rng = random.Random()
    now = int(time.time() * 1000)
    events = list(telemetry_events(40_000, start_ms=now - 600_000, span_ms=600_000))
    aggregator.start()
    for chunk in range(4):  # events keep arriving while the aggregator is killed and restarted
        _produce(settings, topics["telemetry"], events[chunk * 10_000:(chunk + 1) * 10_000], junk=2)
        time.sleep(rng.uniform(1.0, 4.0))
        aggregator.kill9()
        aggregator.start()
    _wait_caught_up(settings, topics["telemetry"])
    aggregator.stop()

    expected = _offline(events)
    for window in ("1m", "1h", "1d"):  # every window kind adds up to the same totals
        got = _aggregated(settings, topics["usage.aggregates"], window)
        assert got.keys() == expected.keys()
        wrong = {k: (dict(got[k]), dict(expected[k])) for k in expected if got[k] != expected[k]}
        example = next(iter(wrong.items()), None)
        assert not wrong, f"{window}: {len(wrong)} of {len(expected)} totals differ, e.g. {example}"

    letters = Consumer(consumer_config(settings, group_id=f"t-{uuid.uuid4().hex[:6]}", role="admin"))
    letters.subscribe([topics["deadletter"]])
    found = 0
    deadline = time.monotonic() + 20
    while found < 8 and time.monotonic() < deadline:
        found += sum(1 for m in letters.consume(100, timeout=0.5) if not m.error())
    letters.close()
    assert found == 8  # 4 chunks x 2 junk records, each dead-lettered once despite the kills


def test_live_usage_reads_what_the_aggregator_counted(settings: Settings, topics: dict[str, str],
                                                      aggregator: AggregatorProcess) -> None:
    now = int(time.time() * 1000)
    events = list(telemetry_events(2_000, start_ms=now - 1_000, span_ms=1_000, late_share=0))
    live = LiveUsage(settings, role="streams").start()
    try:
        aggregator.start()
        _produce(settings, topics["telemetry"], events)
        team = events[0]["team"]
        want = sum(e["cost_nanousd"] for e in events if e["team"] == team)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and live.usage(team, now).spend_today_nanousd != want:
            time.sleep(0.2)
        snapshot = live.usage(team, now)
        assert snapshot.spend_today_nanousd == want
        key = events[0]["api_key_id"]
        assert live.usage(f"{team}/{key}", now).spend_today_nanousd == sum(
            e["cost_nanousd"] for e in events if e["api_key_id"] == key)
        assert live.last_lag_ms is not None
    finally:
        live.close()
    # the same figure through the command analysts run
    printed = CliRunner().invoke(app, ["usage", "--by", "team", "--window", "1d", "--json",
                                       "--config", str(aggregator.config)])
    assert printed.exit_code == 0, printed.output
    [row] = [r for r in json.loads(printed.output) if r["team"] == team]
    assert row["cost_nanousd"] == want
