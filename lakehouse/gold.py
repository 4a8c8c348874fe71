"""Gold tables: what analysts and the report read, rebuilt from bronze for the days that changed.

`daily_cost`: per date, team, project, provider and model — requests, attempts, errors, cache hits,
tokens and cost (integer nano-dollars, summed exactly from telemetry). A rebuild overwrites only the
date partitions it recomputes (`predicate`), in one Delta transaction per run, so readers never see a
half-written day.
"""

from __future__ import annotations

from pathlib import Path

from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from lakehouse.query import run_query
from streamgate.config import Settings

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


def gold_root(settings: Settings) -> Path:
    return settings.resolve(settings.lakehouse.root) / "gold"


def rebuild_daily_cost(settings: Settings, dates: list[str] | None = None) -> int:
    """Recompute `gold/daily_cost` for `dates` (all dates when None); returns rows written."""
    where = ""
    if dates:
        quoted = ", ".join(f"'{d}'" for d in dates if _is_date(d))
        where = f"where date in ({quoted})"
    table = run_query(settings, DAILY_COST_SQL.format(where=where))
    path = gold_root(settings) / "daily_cost"
    exists = _exists(path)
    if dates and exists:
        predicate = " or ".join(f"date = '{d}'" for d in dates if _is_date(d))
        write_deltalake(str(path), table, mode="overwrite", predicate=predicate, partition_by=["date"])
    else:
        write_deltalake(str(path), table, mode="overwrite", partition_by=["date"], schema_mode="overwrite")
    return int(table.num_rows)


def touched_dates(settings: Settings) -> list[str]:
    dates = run_query(settings, "select distinct date from telemetry order by date")
    return [str(d) for d in dates.column("date").to_pylist()]


def _exists(path: Path) -> bool:
    try:
        DeltaTable(str(path))
        return True
    except TableNotFoundError:
        return False


def _is_date(text: str) -> bool:
    """Dates come from our own partition values; anything else never reaches SQL."""
    return len(text) == 10 and text[4] == "-" and text[7] == "-" and text.replace("-", "").isdigit()

