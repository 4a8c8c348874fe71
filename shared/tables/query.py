"""SQL over the lakehouse: every Delta table under the root, registered by its folder name."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder

from streamgate.config import Settings


def find_tables(root: Path) -> dict[str, Path]:
    """bronze tables by their own name (`telemetry`), other layers prefixed (`gold_daily_cost`)."""
    found: dict[str, Path] = {}
    for log in sorted(root.glob("*/*/_delta_log")):
        layer, name = log.parent.parent.name, log.parent.name
        found[name if layer == "bronze" else f"{layer}_{name}"] = log.parent
    return found


def run_query(settings: Settings, sql: str) -> pa.Table:
    root = settings.resolve(settings.lakehouse.root)
    tables = find_tables(root)
    if not tables:
        raise FileNotFoundError(f"no Delta tables under {root} yet (run `streamgate lakehouse sink`)")
    builder = QueryBuilder()
    for name, path in tables.items():
        builder.register(name, DeltaTable(str(path)))
    return pa.table(builder.execute(sql).read_all())  # arro3 -> pyarrow through the Arrow C interface


def silver_root(settings: Settings) -> Path:
    return settings.resolve(settings.lakehouse.root) / "silver"
