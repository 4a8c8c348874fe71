"""SQL over the lakehouse: every Delta table under the root, registered by its folder name."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from deltalake import QueryBuilder

from shared.tables.delta import open_table
from streamgate.config import Settings
from streamgate.storage import TablePath


def find_tables(root: TablePath) -> dict[str, TablePath]:
    """bronze tables by their own name (`telemetry`), other layers prefixed (`gold_daily_cost`)."""
    found: dict[str, TablePath] = {}
    logs: list[TablePath] = list(root.glob("*/*/_delta_log"))
    for log in sorted(logs, key=str):
        layer, name = log.parent.parent.name, log.parent.name
        found[name if layer == "bronze" else f"{layer}_{name}"] = log.parent
    return found


def run_query(settings: Settings, sql: str) -> pa.Table:
    return pa.table(_builder(settings).execute(sql).read_all())  # arro3 -> pyarrow (Arrow C interface)


def stream_query(settings: Settings, sql: str, rows: int) -> Iterator[pa.Table]:
    """The result in tables of about `rows` rows, computed as they are read: a scan of a large table
    holds one of them, not the table."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in _builder(settings).execute(sql):
        pending.append(pa.record_batch(batch))
        held += pending[-1].num_rows
        if held >= rows:
            yield pa.Table.from_batches(pending)
            pending, held = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def _builder(settings: Settings) -> QueryBuilder:
    root = settings.table_root()
    tables = find_tables(root)
    if not tables:
        raise FileNotFoundError(f"no Delta tables under {root} yet (run `streamgate lakehouse sink`)")
    builder = QueryBuilder()
    for name, path in tables.items():
        builder.register(name, open_table(path))
    return builder


def silver_root(settings: Settings) -> TablePath:
    return settings.table_root() / "silver"
