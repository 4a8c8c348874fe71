"""The lakehouse's feature layer: Delta tables under `<lakehouse>/features/` that Feast reads offline.

Gold tables are keyed by a `date` string; Feast joins on event timestamps, and a day's total is only
known once the day is over, so `build_from_gold` copies them here with `event_timestamp` = the day's
end (no training row can see a day before it closed). The push worker appends what it pushes online
to the stream-fed tables, so the offline history is exactly what the gateway read.
"""

from __future__ import annotations

import pyarrow as pa

from shared.tables.delta import open_or_none, write_table
from shared.tables.query import find_tables, run_query
from streamgate.config import Settings
from streamgate.storage import TablePath

TS = pa.timestamp("us", tz="UTC")
EMBEDDING_DIM = 384  # all-MiniLM-L6-v2, the semantic cache's embedder

def _fields(key: str, **columns: pa.DataType) -> list[pa.Field]:
    return [pa.field(key, pa.string(), False), pa.field("event_timestamp", TS, False),
            *(pa.field(name, dtype) for name, dtype in columns.items())]


_I, _F = pa.int64(), pa.float64()
_USAGE = {"minute_start_ms": _I, "requests_1m": _I, "tokens_1m": _I, "day_start_ms": _I,
          "spend_today_nanousd": _I, "month_start_ms": _I, "spend_month_nanousd": _I}

SCHEMAS: dict[str, pa.Schema] = {name: pa.schema(f) for name, f in {
    # stream-fed (the push sources' offline history)
    "provider_health": _fields("target", latency_p50_ms=_F, latency_p95_ms=_F, error_rate=_F, attempts_5m=_I),
    "team_usage": _fields("team", **_USAGE),
    "key_usage": _fields("api_key_id", **_USAGE),
    # from gold, one row per day, stamped at the day's end
    "team_daily": _fields("team", day_requests=_I, day_tokens=_I, day_cost_nanousd=_I),
    "provider_daily": _fields("target", day_latency_p95_ms=_F, day_error_rate=_F, day_fallback_rate=_F),
    # RAG: chunks of the project's docs with their MiniLM embeddings
    "doc_chunks": _fields("chunk_id", source=pa.string(), text=pa.string(), embedding=pa.list_(pa.float32())),
}.items()}

_FROM_GOLD = {
    "team_daily": """
select team, cast(to_timestamp(date) + interval '1 day' as timestamp) as event_timestamp,
       cast(sum(requests) as bigint) as day_requests,
       cast(sum(prompt_tokens + completion_tokens) as bigint) as day_tokens,
       cast(sum(cost_nanousd) as bigint) as day_cost_nanousd
from gold_daily_cost group by team, date""",
    "provider_daily": """
select provider || '/' || model as target,
       cast(to_timestamp(date) + interval '1 day' as timestamp) as event_timestamp,
       latency_p95_ms as day_latency_p95_ms, error_rate as day_error_rate, fallback_rate as day_fallback_rate
from gold_provider_daily""",
}


def features_root(settings: Settings) -> TablePath:
    return settings.table_root() / "features"


def table_path(settings: Settings, name: str) -> TablePath:
    return features_root(settings) / name


def ensure_tables(settings: Settings) -> None:
    """Create every feature table that does not exist yet (empty, with its schema), so Feast can apply
    and materialize before the first row arrives."""
    for name, schema in SCHEMAS.items():
        path = table_path(settings, name)
        if open_or_none(path) is None:
            write_table(path, schema.empty_table(), mode="append")


def append(settings: Settings, name: str, table: pa.Table, *, overwrite: bool = False) -> None:
    rows = table.select(SCHEMAS[name].names).cast(SCHEMAS[name])
    write_table(table_path(settings, name), rows, mode="overwrite" if overwrite else "append")


def build_from_gold(settings: Settings) -> dict[str, int]:
    """Rebuild the daily feature tables from gold (whole tables: gold is small, one row per day)."""
    have = set(find_tables(settings.table_root()))
    written = {}
    for name, sql in _FROM_GOLD.items():
        source = "gold_daily_cost" if name == "team_daily" else "gold_provider_daily"
        if source not in have:
            continue
        rows = run_query(settings, sql)
        append(settings, name, rows.cast(pa.schema([f.with_type(TS) if f.name == "event_timestamp" else f
                                                    for f in rows.schema])), overwrite=True)
        written[name] = int(rows.num_rows)
    return written
