"""SQL over the lakehouse: every Delta table under the root, registered by its folder name."""

from __future__ import annotations

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
    root = settings.table_root()
    tables = find_tables(root)
    if not tables:
        raise FileNotFoundError(f"no Delta tables under {root} yet (run `streamgate lakehouse sink`)")
    builder = QueryBuilder()
    for name, path in tables.items():
        builder.register(name, open_table(path))
    return pa.table(builder.execute(sql).read_all())  # arro3 -> pyarrow through the Arrow C interface


def silver_root(settings: Settings) -> TablePath:
    return settings.table_root() / "silver"
