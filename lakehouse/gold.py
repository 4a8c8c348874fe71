"""Gold tables: what analysts and the report read, rebuilt from bronze for the days that changed.

- `daily_cost`: per date, team, project, provider and model — requests, attempts, errors, cache hits,
  tokens and cost (integer nano-dollars, summed exactly from telemetry).
- `provider_daily`: per date, provider and model — attempts, error and fallback rates, latency
  p50/p95/p99 (DataFusion's approximate percentiles) and time to first token.
- `guardrail_daily`: per date, team, stage (input/output), guardrail and action — verdicts and entities.

A rebuild overwrites only the date partitions it recomputes (`predicate`), in one Delta transaction per
table, so readers never see a half-written day.
"""

from __future__ import annotations

from lakehouse.slices import valid_dates
from shared.tables.delta import open_or_none, write_table
from shared.tables.query import find_tables, run_query
from streamgate.config import Settings
from streamgate.storage import TablePath

DAILY_COST_SQL = """
select date, team, project, provider, model,
       cast(sum(case when attempt = 1 then 1 else 0 end) as bigint) as requests,
       cast(count(*) as bigint) as attempts,
       cast(sum(case when status = 'ok' then 0 else 1 end) as bigint) as errors,
       cast(sum(case when cache_hit then 1 else 0 end) as bigint) as cache_hits,
       cast(sum(prompt_tokens) as bigint) as prompt_tokens,
       cast(sum(completion_tokens) as bigint) as completion_tokens,
       cast(sum(cost_nanousd) as bigint) as cost_nanousd
from telemetry {where}
group by date, team, project, provider, model
"""


PROVIDER_DAILY_SQL = """
select date, provider, model,
       cast(count(*) as bigint) as attempts,
       avg(case when status = 'ok' then 0.0 else 1.0 end) as error_rate,
       avg(case when fallback_index > 0 then 1.0 else 0.0 end) as fallback_rate,
       approx_percentile_cont(latency_ms, 0.5) as latency_p50_ms,
       approx_percentile_cont(latency_ms, 0.95) as latency_p95_ms,
       approx_percentile_cont(latency_ms, 0.99) as latency_p99_ms,
       avg(ttft_ms) as ttft_mean_ms
from telemetry {where} and not cache_hit
group by date, provider, model
"""

GUARDRAIL_DAILY_SQL = """
select date, team, stage, guardrail, action,
       cast(count(*) as bigint) as verdicts,
       cast(sum(array_length(entities)) as bigint) as entities
from verdicts {where}
group by date, team, stage, guardrail, action
"""

#: gold table -> (SQL, the bronze table it reads)
GOLD = {"daily_cost": (DAILY_COST_SQL, "telemetry"), "provider_daily": (PROVIDER_DAILY_SQL, "telemetry"),
        "guardrail_daily": (GUARDRAIL_DAILY_SQL, "verdicts")}


def gold_root(settings: Settings) -> TablePath:
    return settings.table_root() / "gold"


def rebuild_daily_cost(settings: Settings, dates: list[str] | None = None) -> int:
    """Recompute `gold/daily_cost` for `dates` (all dates when None); returns rows written."""
    return rebuild(settings, "daily_cost", dates)


def rebuild_all(settings: Settings, dates: list[str] | None = None) -> dict[str, int]:
    """Every gold table whose bronze source exists; returns rows written per table."""
    have = set(find_tables(settings.table_root()))
    return {name: rebuild(settings, name, dates) for name, (_, source) in GOLD.items() if source in have}


def rebuild(settings: Settings, name: str, dates: list[str] | None = None) -> int:
    sql, _ = GOLD[name]
    valid = valid_dates(dates)
    where = f"where date in ({', '.join(repr(d) for d in valid)})" if valid else "where true"
    table = run_query(settings, sql.format(where=where))
    path = gold_root(settings) / name
    if valid and open_or_none(path) is not None:
        predicate = " or ".join(f"date = '{d}'" for d in valid)
        write_table(path, table, mode="overwrite", predicate=predicate, partition_by=["date"])
    else:
        write_table(path, table, mode="overwrite", partition_by=["date"], schema_mode="overwrite")
    return int(table.num_rows)


def touched_dates(settings: Settings) -> list[str]:
    dates = run_query(settings, "select distinct date from telemetry order by date")
    return [str(d) for d in dates.column("date").to_pylist()]
