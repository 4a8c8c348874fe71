"""The Feast repo over real Delta tables on disk, applied and served by real Feast (no broker needed):
gold -> feature tables -> online round trip, point-in-time correctness, the gateway's readers, vector
retrieval over the docs, and the feature server."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pyarrow as pa
import pytest
from feast import FeatureStore
from typer.testing import CliRunner

from apps.cli.main import app
from apps.demo.processes import write_config
from features import tables
from features.rag import index_docs, retrieve
from features.serving import FeastHealth, FeastUsage
from features.store import apply
from features.training import training_path, training_set
from shared.embeddings.minilm import MiniLM
from shared.policy.config import load_policy
from shared.tables.delta import open_table, write_table
from shared.usage.windows import month_start_ms, window_bounds
from streamgate.config import Settings, load_settings
from streams.guardrails.budgets import check_budget
from tests.conftest import Lake, free_port, on_s3

D = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings().model_copy(update={"state_dir": tmp_path / "state"})


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, settings: Settings) -> Lake:
    """The feature tables on the local disk, then in the S3 server's bucket (Feast's offline store reads
    them there through delta-rs with the lakehouse's storage options)."""
    if request.param == "local":
        return settings, {}
    return on_s3(settings, request.getfixturevalue("s3_server"))


@pytest.fixture
def store(settings: Settings) -> FeatureStore:
    return apply(settings)[0]


def _gold(settings: Settings, name: str, rows: dict[str, list[Any]]) -> None:
    write_table(settings.table_root() / "gold" / name, pa.table(rows), partition_by=["date"])


def test_gold_to_online_round_trip_through_the_cli(lake: Lake) -> None:
    settings, env = lake
    store = apply(settings)[0]
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    _gold(settings, "daily_cost", {
        "date": [yesterday] * 3, "team": ["search", "search", "support"], "project": ["a", "b", "c"],
        "provider": ["openai"] * 3, "model": ["gpt-4o"] * 3, "requests": [10, 5, 2],
        "prompt_tokens": [100, 50, 20], "completion_tokens": [10, 5, 2], "cost_nanousd": [7_000, 3_000, 11]})
    _gold(settings, "provider_daily", {
        "date": [yesterday], "provider": ["openai"], "model": ["gpt-4o"], "latency_p95_ms": [321.0],
        "error_rate": [0.25], "fallback_rate": [0.5]})
    config = write_config(settings, settings.state_dir / "config.yaml")
    result = CliRunner().invoke(app, ["features", "materialize", "--config", str(config)], env=env)
    assert result.exit_code == 0, result.output
    got = store.get_online_features(
        ["team_daily:day_cost_nanousd", "team_daily:day_requests", "team_daily:day_tokens"],
        [{"team": "search"}, {"team": "support"}, {"team": "nobody"}]).to_dict()
    assert got["day_cost_nanousd"] == [10_000, 11, None]
    assert got["day_requests"] == [15, 2, None]
    assert got["day_tokens"] == [165, 22, None]
    daily = store.get_online_features(["provider_daily:day_latency_p95_ms", "provider_daily:day_error_rate"],
                                      [{"target": "openai/gpt-4o"}]).to_dict()
    assert daily["day_latency_p95_ms"] == [321.0] and daily["day_error_rate"] == [0.25]


def _health_rows(settings: Settings) -> None:
    pushed_at = [D + timedelta(hours=10), D + timedelta(hours=10, minutes=10)]
    rows = pd.DataFrame({"target": ["sim/a", "sim/a"], "event_timestamp": pushed_at,
                         "latency_p50_ms": [50.0, 400.0], "latency_p95_ms": [100.0, 900.0],
                         "error_rate": [0.0, 0.3], "attempts_5m": [200, 180]})
    tables.append(settings, "provider_health", pa.Table.from_pandas(rows, preserve_index=False))
    days = pd.DataFrame({"team": ["x", "x"], "event_timestamp": [D, D + timedelta(days=1)],
                         "day_requests": [1, 2], "day_tokens": [3, 4], "day_cost_nanousd": [5, 7]})
    tables.append(settings, "team_daily", pa.Table.from_pandas(days, preserve_index=False), overwrite=True)


def test_training_set_is_point_in_time_correct(lake: Lake) -> None:
    """A request sees the latest value stamped at or before it, never a later one, and nothing past the
    view's TTL; a day's total is visible only after the day closed."""
    settings, env = lake
    store = apply(settings)[0]
    _health_rows(settings)
    at = [D + timedelta(hours=9), D + timedelta(hours=10, minutes=5), D + timedelta(hours=10, minutes=15),
          D + timedelta(hours=10, minutes=25)]
    entity_df = pd.DataFrame({"team": ["x"] * 4, "target": ["sim/a"] * 4, "event_timestamp": at,
                              "request_id": ["before", "between", "after", "stale"]})
    out = training_set(settings, entity_df, store).set_index("request_id")
    p95 = out["latency_p95_ms"]
    assert pd.isna(p95["before"])  # nothing known yet
    assert p95["between"] == 100.0  # not the 900 pushed five minutes later
    assert p95["after"] == 900.0
    assert pd.isna(p95["stale"])  # 15 minutes old: past the 10-minute TTL of pushed features
    # requests on day D see day D-1's total (stamped at D 00:00), never D's own (stamped at D+1 00:00)
    assert set(out["day_cost_nanousd"]) == {5}

    # the same through silver request_facts, written as a Delta table
    silver = settings.table_root() / "silver" / "request_facts"
    write_table(silver, pa.table({
        "request_id": ["r1", "r2", "r3"], "team": ["x"] * 3, "provider": ["sim"] * 3, "model": ["a"] * 3,
        "status": ["ok", "ok", "error"], "cache_hit": [False, False, False],
        "created_at": pa.array([at[1], at[2], at[2]], pa.timestamp("ms", tz="UTC")),
        "latency_ms": [120, 950, 5], "cost_nanousd": [1, 2, 3]}))
    config = write_config(settings, settings.state_dir / "config.yaml")
    result = CliRunner().invoke(app, ["features", "training-set", "--config", str(config)], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("2 rows")  # errors are not latency examples
    written = open_table(training_path(settings)).to_pandas().set_index("request_id")
    assert set(written.index) == {"r1", "r2"}
    assert written.loc["r1", "latency_p95_ms"] == 100.0 and written.loc["r1", "latency_ms"] == 120
    assert written.loc["r2", "latency_p95_ms"] == 900.0


def test_gateway_reads_pushed_features(settings: Settings, store: FeatureStore) -> None:
    now = datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    store.push("provider_health_push", pd.DataFrame({
        "target": ["sim/slow"], "event_timestamp": [now], "latency_p50_ms": [800.0],
        "latency_p95_ms": [2500.0], "error_rate": [0.1], "attempts_5m": [42]}))
    health = FeastHealth(store, ttl_s=0)
    stats = health.get("sim", "slow")
    assert stats is not None and (stats.p95_ms, stats.error_rate, stats.samples) == (2500.0, 0.1, 42)
    assert health.get("sim", "never-seen") is None

    minute, _ = window_bounds("1m", now_ms)
    day, _ = window_bounds("1d", now_ms)
    usage = {"minute_start_ms": [minute, minute - 60_000], "requests_1m": [150, 999], "tokens_1m": [10, 10],
             "day_start_ms": [day, day], "spend_today_nanousd": [5, 6],
             "month_start_ms": [month_start_ms(now_ms)] * 2,
             "spend_month_nanousd": [50, 60]}
    store.push("team_usage_push", pd.DataFrame({"team": ["research", "support"], "event_timestamp": [now] * 2,
                                                **usage}))
    reader = FeastUsage(store, ttl_s=0)
    fresh, stale = reader.usage("research", now_ms), reader.usage("support", now_ms)
    assert (fresh.requests_last_minute, fresh.spend_today_nanousd, fresh.spend_month_nanousd) == (150, 5, 50)
    assert (stale.requests_last_minute, stale.spend_today_nanousd) == (0, 6)  # last minute's count is over
    # the budget check reads it: research may send 150 requests per minute
    event = {"team": "research", "api_key_id": "sha256:k", "messages": [{"role": "user", "content": "hi"}],
             "params": {}}
    rejection = check_budget(event, load_policy(), reader, now_ms)
    assert rejection is not None and rejection.reason_code == "budget_exceeded"


def test_vector_retrieval_over_the_docs(settings: Settings, store: FeatureStore) -> None:
    embedder = MiniLM(settings.dispatch.cache.semantic.model_dir)
    readme = Path(__file__).resolve().parents[2] / "README.md"
    assert index_docs(settings, store, [readme], embedder) > 10
    hits = retrieve(store, embedder, "How do I point the openai provider at the real API with my key?", 5)
    assert len(hits) == 5 and hits == sorted(hits, key=lambda h: h.distance)
    assert "README.md#Providers" in [h.source for h in hits]
    again = retrieve(store, embedder, "Which environment variables override the configuration file?", 5)
    assert "README.md#Configuration" in [h.source for h in again]


@pytest.mark.slow
def test_feature_server_answers(settings: Settings, store: FeatureStore, tmp_path: Path) -> None:
    store.push("provider_health_push", pd.DataFrame({
        "target": ["sim/a"], "event_timestamp": [datetime.now(UTC)], "latency_p50_ms": [1.0],
        "latency_p95_ms": [77.0], "error_rate": [0.0], "attempts_5m": [3]}))
    config, port = write_config(settings, tmp_path / "serve.yaml"), free_port()
    exe = Path(sys.executable).parent / "streamgate"
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen([str(exe), "features", "serve", "--port", str(port), "--config", str(config)],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline, body = time.monotonic() + 90, None
        while time.monotonic() < deadline and body is None:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/get-online-features", timeout=5, json={
                    "features": ["provider_health:latency_p95_ms"], "entities": {"target": ["sim/a"]}})
                body = r.json()
            except httpx.HTTPError:
                time.sleep(0.5)
        assert body is not None, "the feature server did not answer"
        names = body["metadata"]["feature_names"]
        assert body["results"][names.index("latency_p95_ms")]["values"] == [77.0]
    finally:
        proc.terminate()
        proc.wait(20)
