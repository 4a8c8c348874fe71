"""Write recorded history straight into bronze Delta tables (for constructed-history tests and the
benchmark): the sink's schemas and partitioning, without Kafka in between."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from apps.backtest.history import bronze
from lakehouse.tables import BRONZE
from shared.tables.delta import write_table
from streamgate.config import Settings

TABLES = {t.name: t for t in BRONZE}
TIME_COLUMN = {
    "requests": "created_at",
    "routed": "created_at",
    "responses": "created_at",
    "telemetry": "started_at",
    "verdicts": "created_at",
    "deadletter": "failed_at",
}


def day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def write_bronze(settings: Settings, name: str, rows: list[dict[str, Any]] | pa.Table) -> int:
    """Append `rows` (events of the table's type) to bronze `name`, with Kafka coordinates made up in
    order and the `date` partition from each event's time."""
    spec = TABLES[name]
    if not isinstance(rows, pa.Table):
        # an absent array field takes its Avro default, [] (as the codec writes it), not null
        lists = [f.name for f in spec.event_schema() if pa.types.is_list(f.type)]
        rows = [{**r, **{k: r.get(k) or [] for k in lists}} for r in rows]
    events = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=spec.event_schema())
    n = events.num_rows
    times = pc.cast(events[TIME_COLUMN[name]], pa.int64()).to_numpy()
    days = np.unique(times // 86_400_000)
    names = {int(d): day(int(d) * 86_400_000) for d in days}
    dates = pa.array([names[int(d)] for d in days], pa.string()).take(
        pa.array(np.searchsorted(days, times // 86_400_000))
    )
    meta = {
        "_partition": pa.array(np.zeros(n, np.int32)),
        "_offset": pa.array(np.arange(n, dtype=np.int64)),
        "_kafka_ts": pc.cast(events[TIME_COLUMN[name]], pa.timestamp("ms", tz="UTC")),
        "date": dates,
    }
    table = pa.Table.from_arrays([*events.columns, *meta.values()], names=[*events.column_names, *meta])
    write_table(
        bronze(settings, name), table.cast(spec.schema()), mode="append", partition_by=["date"]
    )
    return int(n)
