"""The shared metrics/health module: a real HTTP server in-process; staleness, port clashes, lag maths."""

from __future__ import annotations

import socket
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from streamgate.config import ConfigError, Settings, load_settings
from streamgate.observability import CountExport, serve_metrics
from streamgate.observability.metrics import EVENTS_IN, lag_from_stats
from tests.conftest import free_port
from tests.helpers.scrape import health, scrape, total


def _settings(port: int, stale_after_s: float = 30.0) -> Settings:
    base = load_settings(env={})
    ports = base.metrics.ports.model_copy(update={"aggregator": port})
    return base.model_copy(update={"metrics": base.metrics.model_copy(
        update={"ports": ports, "stale_after_s": stale_after_s})})


def test_healthz_turns_503_when_the_loop_stops_beating_and_200_when_it_resumes() -> None:
    port = free_port()
    beat = serve_metrics(_settings(port, stale_after_s=2.0), "aggregator")
    try:
        beat.beat()
        assert beat.port == port and health(port)[0] == 200
        time.sleep(2.2)
        code, body = health(port)
        assert code == 503 and body["status"] == "stale" and body["last_progress_s_ago"] >= 2.0
        beat.beat()
        code, body = health(port)
        assert code == 200 and body["status"] == "ok"
        assert httpx.get(f"http://127.0.0.1:{port}/nope", timeout=5).status_code == 404
        stamp = total(scrape(port), "streamgate_last_progress_timestamp_seconds", component="aggregator")
        assert abs(stamp - time.time()) < 5
    finally:
        beat.stop()


def test_a_busy_port_leaves_the_component_running_without_metrics() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        beat = serve_metrics(_settings(taken.getsockname()[1]), "aggregator")
        assert beat.port == 0
        beat.beat()  # still usable


def test_port_zero_or_disabled_serves_nothing() -> None:
    assert serve_metrics(_settings(0), "aggregator").port == 0
    settings = _settings(free_port())
    off = settings.model_copy(update={"metrics": settings.metrics.model_copy(update={"enabled": False})})
    assert serve_metrics(off, "aggregator").port == 0
    with pytest.raises(ValueError, match="unknown component"):
        settings.metrics.port("nope")


def test_metrics_config_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("metrics:\n  ports: {dispatcher: 9500, aggregator: 9500}\n")
    with pytest.raises(ConfigError, match="must differ"):
        load_settings(path, env={})
    path.write_text("metrics:\n  port: 9500\n")
    with pytest.raises(ConfigError, match="port"):
        load_settings(path, env={})


def test_count_export_publishes_deltas_once() -> None:
    counts: Counter[str] = Counter()
    child = EVENTS_IN.labels("unit", "export")
    export = CountExport(counts, lambda key: [child] if key == "seen" else [])
    before = child._value.get()
    counts["seen"] += 5
    counts["ignored"] += 2
    export.publish()
    export.publish()
    counts["seen"] += 3
    export.publish()
    assert child._value.get() - before == 8


def test_lag_from_librdkafka_statistics() -> None:
    stats = {"topics": {"telemetry": {"partitions": {
        "0": {"fetch_state": "active", "ls_offset": 120, "hi_offset": 130, "app_offset": 100},
        "1": {"fetch_state": "active", "ls_offset": -1, "hi_offset": 50, "app_offset": -1001,
              "committed_offset": 45},
        "2": {"fetch_state": "none", "ls_offset": 10, "hi_offset": 10, "app_offset": 0},
        "-1": {"fetch_state": "none", "ls_offset": -1, "hi_offset": -1, "app_offset": -1}}}}}
    assert lag_from_stats(stats) == {("telemetry", 0): 20, ("telemetry", 1): 5}
