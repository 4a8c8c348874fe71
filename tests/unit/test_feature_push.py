"""The push worker's features from aggregate rows (as LiveUsage holds them), and its retry after a failed
push. The store is a recording stand-in; the feature tables it appends to are real Delta tables."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from aggregation.state import PartitionState
from features.push import FeaturePusher
from features.tables import ensure_tables
from shared.traffic.telemetry import telemetry_events
from streamgate.config import KafkaSettings, SecuritySettings, Settings


class RecordingStore:
    def __init__(self, failures: int = 0) -> None:
        self.failures, self.pushed = failures, []

    def push(self, source: str, frame: pd.DataFrame) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("database is locked")
        self.pushed.append((source, frame))


def _pusher(tmp_path: Path, store: RecordingStore) -> tuple[FeaturePusher, list[dict[str, Any]], int]:
    # not started: no broker, so no Kafka credentials either
    plain = KafkaSettings(security=SecuritySettings(protocol="PLAINTEXT"))
    settings = Settings(state_dir=tmp_path, kafka=plain)
    ensure_tables(settings)
    pusher = FeaturePusher(settings, store=store)  # type: ignore[arg-type]  # not started: no broker
    now = int(time.time() * 1000)
    events = list(telemetry_events(600, start_ms=now - 1_000, span_ms=1_000, late_share=0))
    for partition in (0, 1):  # two aggregator partitions: features sum over both
        state = PartitionState(partition, grace_ms=30_000)
        state.apply_batch(e for i, e in enumerate(events) if i % 2 == partition)
        for key, cell in state.take_dirty():
            row = cell.to_row(key, state.watermark_ms, now)
            if key.window != "1h":
                pusher.live.rows[(key.window, key.window_start, key.dimension, key.value)][partition] = row
                pusher.live._changed[(key.dimension, key.value)] = state.watermark_ms
    return pusher, events, now


def test_features_are_computed_from_every_partition(tmp_path: Path) -> None:
    store = RecordingStore()
    pusher, events, now = _pusher(tmp_path, store)
    report = pusher.push_once(now)
    frames = dict(store.pushed)
    assert set(frames) == {"provider_health_push", "team_usage_push", "key_usage_push"}
    assert report.rows["team_usage"] == len({e["team"] for e in events})

    target = f"{events[0]['provider']}/{events[0]['model']}"
    mine = [e for e in events if f"{e['provider']}/{e['model']}" == target]
    [health] = frames["provider_health_push"].query("target == @target").to_dict("records")
    assert health["attempts_5m"] == len(mine)
    assert health["error_rate"] == pytest.approx(sum(e["status"] != "ok" for e in mine) / len(mine))
    true_p95 = float(np.percentile([e["latency_ms"] for e in mine if e["latency_ms"]], 95, method="lower"))
    assert health["latency_p95_ms"] == pytest.approx(true_p95, rel=0.03)  # DDSketch, 1% accuracy

    team = events[0]["team"]
    [usage] = frames["team_usage_push"].query("team == @team").to_dict("records")
    assert usage["spend_today_nanousd"] == sum(e["cost_nanousd"] for e in events if e["team"] == team)
    assert usage["minute_start_ms"] == now - now % 60_000
    assert usage["requests_1m"] <= sum(e["attempt"] == 1 for e in events if e["team"] == team)
    pusher.live.consumer.close()


def test_a_failed_push_is_pushed_again_next_round(tmp_path: Path) -> None:
    store = RecordingStore(failures=1)
    pusher, events, now = _pusher(tmp_path, store)
    with pytest.raises(RuntimeError):
        pusher.push_once(now)
    assert store.pushed == []
    report = pusher.push_once(now)  # nothing new arrived: the failed round's entities go again
    assert report.rows["team_usage"] == len({e["team"] for e in events})
    assert pusher.push_once(now).rows == {}
    pusher.live.consumer.close()
