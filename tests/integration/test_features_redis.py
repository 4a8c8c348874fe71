"""Redis as the online store (the production choice): a real redis-server on a free port, the same
repo applied to it, pushed and materialized features read back, by Feast and by the gateway reader."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import redis

from features import tables
from features.local_redis import LocalRedis
from features.serving import FeastHealth
from features.store import apply, repo_config
from streamgate.config import Settings, load_settings


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    if not LocalRedis.available():
        pytest.skip("redis-server is not installed (scripts/bootstrap.sh installs the Debian package)")
    with LocalRedis(tmp_path / "redis") as server:
        yield server.url


def test_redis_online_store_round_trip(redis_url: str, tmp_path: Path) -> None:
    base = load_settings()
    settings: Settings = base.model_copy(update={
        "state_dir": tmp_path / "state",
        "features": base.features.model_copy(update={"online_store": "redis", "redis_url": redis_url})})
    assert repo_config(settings)["online_store"] == {"type": "redis", "connection_string": redis_url}
    store, _ = apply(settings)
    now = datetime.now(UTC)
    store.push("provider_health_push", pd.DataFrame({
        "target": ["sim/a"], "event_timestamp": [now], "latency_p50_ms": [10.0], "latency_p95_ms": [55.0],
        "error_rate": [0.5], "attempts_5m": [8]}))
    stats = FeastHealth(store, ttl_s=0).get("sim", "a")
    assert stats is not None and (stats.p95_ms, stats.error_rate, stats.samples) == (55.0, 0.5, 8)

    day = pd.DataFrame({"team": ["search"], "event_timestamp": [now - timedelta(hours=1)],
                        "day_requests": [3], "day_tokens": [4], "day_cost_nanousd": [99]})
    tables.append(settings, "team_daily", pa.Table.from_pandas(day, preserve_index=False))
    store.materialize(now - timedelta(days=1), now, feature_views=["team_daily"])
    got = store.get_online_features(["team_daily:day_cost_nanousd"], [{"team": "search"}]).to_dict()
    assert got["day_cost_nanousd"] == [99]
    assert redis.Redis.from_url(f"redis://{redis_url}").dbsize() > 0  # the values live in Redis
