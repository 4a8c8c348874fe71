"""The report's numbers: SQL over the gold tables (totals, rates, percentiles), the silver request facts
(cache hits per request) and bronze telemetry, responses and verdicts (time series, entity types).

Each section reads only the tables it needs; a table not there yet leaves its section empty (the page
says so) instead of failing the report.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.tables.query import find_tables, run_query
from streamgate.config import Settings

log = logging.getLogger("streamgate.report")

#: Time-bucket sizes (seconds): the smallest that keeps a series under ~60 points is used.
_BUCKETS = (1, 2, 5, 10, 30, 60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86_400)
Point = tuple[float, float]


@dataclass(frozen=True)
class Series:
    name: str
    points: list[Point]


@dataclass
class ReportData:
    generated_at: datetime
    tables: list[str]
    kpis: dict[str, float] = field(default_factory=dict)
    bucket_s: int = 60
    period: tuple[float, float] | None = None
    spend_over_time: list[Series] = field(default_factory=list)  # USD per bucket, per team
    spend_by_team: list[tuple[str, float]] = field(default_factory=list)  # USD
    #: provider/model -> (p50, p95, p99) ms, attempts-weighted over the days in gold
    latency: list[tuple[str, tuple[float, float, float]]] = field(default_factory=list)
    #: provider/model -> (error rate, fallback rate), 0..1
    rates: list[tuple[str, tuple[float, float]]] = field(default_factory=list)
    outcomes_over_time: list[Series] = field(default_factory=list)  # responses per bucket, per status
    entities: list[tuple[str, float]] = field(default_factory=list)  # PII entity type -> hits
    guardrail_actions: list[tuple[str, float]] = field(default_factory=list)  # stage/action -> verdicts
    cache_over_time: list[Series] = field(default_factory=list)  # hit rate % per bucket
    cache_by_team: list[tuple[str, float]] = field(default_factory=list)  # hit rate % per team
    #: the last `streamgate policy backtest` summary (its --json), when one was run on this state
    backtest: dict[str, Any] | None = None

    @property
    def empty(self) -> bool:
        return not self.tables


def load_report_data(settings: Settings) -> ReportData:
    tables = sorted(find_tables(settings.table_root()))
    data = ReportData(generated_at=datetime.now(UTC), tables=tables, backtest=_last_backtest(settings))
    if not tables:
        return data
    have = set(tables)

    def q(sql: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = run_query(settings, sql).to_pylist()
        return rows

    sections: list[tuple[set[str], Callable[[], None]]] = [
        ({"gold_daily_cost"}, lambda: _costs(data, q)),
        ({"telemetry"}, lambda: _time_series(data, q)),
        ({"gold_provider_daily"}, lambda: _providers(data, q)),
        ({"responses"}, lambda: _outcomes(data, q)),
        ({"verdicts"}, lambda: _entities(data, q)),
        ({"gold_guardrail_daily"}, lambda: _guardrails(data, q)),
        ({"silver_request_facts"}, lambda: _cache_per_request(data, q)),
    ]
    for needs, load in sections:
        if needs <= have:
            try:
                load()
            except Exception as exc:  # one broken section must not hide the others
                log.warning("report section over %s failed: %s", ", ".join(sorted(needs)), exc)
    return data


Query = Callable[[str], list[dict[str, Any]]]


def _last_backtest(settings: Settings) -> dict[str, Any] | None:
    from apps.backtest.run import summary_path

    path = summary_path(settings)
    try:
        found: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("backtest summary %s unreadable: %s", path, exc)
        return None
    return found


def _costs(data: ReportData, q: Query) -> None:
    [t] = q("select sum(requests) as requests, sum(attempts) as attempts, sum(errors) as errors, "
            "sum(cache_hits) as cache_hits, sum(cost_nanousd) as cost from gold_daily_cost")
    attempts = float(t["attempts"] or 0)
    data.kpis |= {"requests": float(t["requests"] or 0), "attempts": attempts,
                  "spend_usd": (t["cost"] or 0) / 1e9,
                  "error_rate": (t["errors"] or 0) / attempts if attempts else 0.0,
                  "cache_hit_rate": (t["cache_hits"] or 0) / attempts if attempts else 0.0}
    data.spend_by_team = [(r["team"], (r["cost"] or 0) / 1e9) for r in q(
        "select team, sum(cost_nanousd) as cost from gold_daily_cost group by team order by cost desc")]
    data.cache_by_team = [(r["team"], 100.0 * r["hits"] / r["n"]) for r in q(
        "select team, sum(cache_hits) as hits, sum(attempts) as n from gold_daily_cost "
        "group by team order by team") if r["n"]]


def _bucket(q: Query, table: str, column: str) -> tuple[int, tuple[float, float] | None]:
    [span] = q(f"select to_unixtime(min({column})) as a, to_unixtime(max({column})) as b from {table}")
    if span["a"] is None:
        return 60, None
    seconds = max(float(span["b"]) - float(span["a"]), 1.0)
    bucket = next((b for b in _BUCKETS if seconds / b <= 60), _BUCKETS[-1])
    return bucket, (float(span["a"]), float(span["b"]))


def _binned(column: str, bucket_s: int) -> str:
    return (f"to_unixtime(date_bin(interval '{bucket_s} seconds', {column}, "
            f"timestamp '1970-01-01T00:00:00Z'))")


def _group_series(rows: list[dict[str, Any]], key: str,
                  value: Callable[[dict[str, Any]], float]) -> list[Series]:
    by: dict[str, list[Point]] = {}
    for r in rows:
        by.setdefault(str(r[key]), []).append((float(r["t"]), value(r)))
    return [Series(name, sorted(points)) for name, points in sorted(by.items())]


def _time_series(data: ReportData, q: Query) -> None:
    data.bucket_s, data.period = _bucket(q, "telemetry", "ended_at")
    t = _binned("ended_at", data.bucket_s)
    rows = q(f"select team, {t} as t, sum(cost_nanousd) as cost from telemetry group by 1, 2")
    data.spend_over_time = _group_series(rows, "team", lambda r: (r["cost"] or 0) / 1e9)
    rows = q(f"select {t} as t, avg(case when cache_hit then 100.0 else 0.0 end) as rate "
             f"from telemetry group by 1")
    data.cache_over_time = [Series("cache hit rate", sorted((float(r["t"]), float(r["rate"])) for r in rows))]


def _providers(data: ReportData, q: Query) -> None:
    rows = q("select provider || '/' || model as target, sum(attempts) as n, "
             "sum(latency_p50_ms * attempts) / sum(attempts) as p50, "
             "sum(latency_p95_ms * attempts) / sum(attempts) as p95, "
             "sum(latency_p99_ms * attempts) / sum(attempts) as p99, "
             "sum(error_rate * attempts) / sum(attempts) as errors, "
             "sum(fallback_rate * attempts) / sum(attempts) as fallbacks "
             "from gold_provider_daily group by 1 order by n desc")
    rows = [r for r in rows if r["n"]]
    data.latency = [(r["target"], (r["p50"] or 0.0, r["p95"] or 0.0, r["p99"] or 0.0)) for r in rows]
    data.rates = [(r["target"], (r["errors"] or 0.0, r["fallbacks"] or 0.0)) for r in rows]
    total = sum(r["n"] for r in rows)
    if total:
        data.kpis["latency_p95_ms"] = sum((r["p95"] or 0.0) * r["n"] for r in rows) / total
        data.kpis["fallback_rate"] = sum((r["fallbacks"] or 0.0) * r["n"] for r in rows) / total


def _outcomes(data: ReportData, q: Query) -> None:
    if data.period is None:
        data.bucket_s, data.period = _bucket(q, "responses", "completed_at")
    t = _binned("completed_at", data.bucket_s)
    rows = q(f"select status, {t} as t, count(*) as n from responses group by 1, 2")
    data.outcomes_over_time = _group_series(rows, "status", lambda r: float(r["n"]))
    data.kpis["responses"] = float(sum(r["n"] for r in rows))


def _entities(data: ReportData, q: Query) -> None:
    rows = q("select e['type'] as entity, count(*) as n from (select unnest(entities) as e from verdicts) "
             "group by 1 order by n desc")
    data.entities = [(r["entity"], float(r["n"])) for r in rows]
    data.kpis["guardrail_hits"] = float(sum(r["n"] for r in rows))


def _guardrails(data: ReportData, q: Query) -> None:
    rows = q("select stage || ' · ' || action as kind, sum(verdicts) as n from gold_guardrail_daily "
             "group by 1 order by n desc")
    data.guardrail_actions = [(r["kind"], float(r["n"])) for r in rows]


def _cache_per_request(data: ReportData, q: Query) -> None:
    [r] = q("select count(*) as n, sum(case when cache_hit then 1 else 0 end) as hits "
            "from silver_request_facts where status = 'ok'")
    if r["n"]:
        data.kpis["answered_from_cache"] = r["hits"] / r["n"]
