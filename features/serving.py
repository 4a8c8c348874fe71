"""The gateway's reads from Feast online features: provider health for routing, usage for budgets.

Both implement the request path's interfaces (`streams.route.health.ProviderHealth`,
`streams.guardrails.budgets.UsageReader`) and are chosen by `features.health_source` and
`features.usage_source`. Reads are cached for `features.read_cache_s` (one online read per target and
decision would cost more than the decision); pushes arrive about once a second anyway.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from feast import FeatureStore

from features.store import open_store
from schemas.snapshots import HealthStats, UsageSnapshot
from shared.usage.windows import month_start_ms, window_bounds
from streamgate.config import Settings


class _CachedReader:
    def __init__(self, store: FeatureStore, ttl_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.ttl_s, self.clock = store, ttl_s, clock
        self._cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

    def read(self, view: str, key: str, value: str, features: tuple[str, ...]) -> dict[str, Any]:
        now = self.clock()
        hit = self._cache.get((view, value))
        if hit and now - hit[0] < self.ttl_s:
            return hit[1]
        refs = [f"{view}:{f}" for f in features]
        got = self.store.get_online_features(refs, [{key: value}]).to_dict()
        row = {f: got[f][0] for f in features}
        self._cache[(view, value)] = (now, row)
        return row


class FeastHealth(_CachedReader):
    """`ProviderHealth` from the `provider_health` view (latency p95 and error rate over 5 minutes)."""

    def get(self, provider: str, model: str) -> HealthStats | None:
        row = self.read("provider_health", "target", f"{provider}/{model}",
                        ("latency_p95_ms", "error_rate", "attempts_5m"))
        if row["latency_p95_ms"] is None and row["error_rate"] is None:
            return None  # no data (or older than the view's TTL): treated as healthy, as before
        return HealthStats(p95_ms=float(row["latency_p95_ms"] or 0.0),
                           error_rate=float(row["error_rate"] or 0.0), samples=int(row["attempts_5m"] or 0))


_USAGE = ("minute_start_ms", "requests_1m", "tokens_1m", "day_start_ms", "spend_today_nanousd",
          "month_start_ms", "spend_month_nanousd")


class FeastUsage(_CachedReader):
    """`UsageReader` from the `team_usage` and `key_usage` views. A value pushed for an earlier minute,
    day or month reads as zero for the current one (nothing was counted since)."""

    def usage(self, scope: str, now_ms: int) -> UsageSnapshot:
        if "/" in scope:
            row = self.read("key_usage", "api_key_id", scope.split("/", 1)[1], _USAGE)
        else:
            row = self.read("team_usage", "team", scope, _USAGE)

        def current(start_field: str, value_field: str, start: int) -> int:
            return int(row[value_field] or 0) if row[start_field] == start else 0

        minute, _ = window_bounds("1m", now_ms)
        day, _ = window_bounds("1d", now_ms)
        return UsageSnapshot(
            requests_last_minute=current("minute_start_ms", "requests_1m", minute),
            tokens_last_minute=current("minute_start_ms", "tokens_1m", minute),
            spend_today_nanousd=current("day_start_ms", "spend_today_nanousd", day),
            spend_month_nanousd=current("month_start_ms", "spend_month_nanousd", month_start_ms(now_ms)))


def feast_health(settings: Settings, store: FeatureStore | None = None) -> FeastHealth:
    return FeastHealth(store or open_store(settings), settings.features.read_cache_s)


def feast_usage(settings: Settings, store: FeatureStore | None = None) -> FeastUsage:
    return FeastUsage(store or open_store(settings), settings.features.read_cache_s)


@dataclass
class OnlineSummary:
    repo: Path
    views: int
    targets: dict[str, dict[str, Any]]
    team_spend_today: dict[str, int]


def online_summary(settings: Settings) -> OnlineSummary:
    """Apply, rebuild the daily features from gold and materialize them (closed days only: a day's row
    is stamped at its end), then read the pushed features of every provider/model and team in gold
    (what `streamgate demo` prints)."""
    from features.store import apply, write_config
    from features.tables import build_from_gold
    from shared.tables.query import run_query

    build_from_gold(settings)
    store, defs = apply(settings)
    now = datetime.now(UTC)
    store.materialize(now - timedelta(days=3), now, feature_views=["team_daily", "provider_daily"])
    seen = run_query(settings, "select distinct team, provider || '/' || model as target "
                               "from gold_daily_cost").to_pylist()
    targets = sorted({r["target"] for r in seen})
    teams = sorted({r["team"] for r in seen})
    health = store.get_online_features(
        ["provider_health:latency_p95_ms", "provider_health:error_rate", "provider_health:attempts_5m"],
        [{"target": t} for t in targets]).to_dict()
    spend = store.get_online_features(["team_usage:spend_today_nanousd"],
                                      [{"team": t} for t in teams]).to_dict()
    return OnlineSummary(
        repo=write_config(settings), views=len(defs.objects()),
        targets={t: {k: health[k][i] for k in ("latency_p95_ms", "error_rate", "attempts_5m")}
                 for i, t in enumerate(targets)},
        team_spend_today={t: v for t, v in zip(teams, spend["spend_today_nanousd"], strict=True) if v})
