"""Reading streamgate's Delta tables with pandas and Polars (run after `make demo`).

    .venv/bin/python docs/examples/read_tables.py [LAKEHOUSE_ROOT]

pandas comes with the project; Polars is in the `bench` dependency group (`uv sync --group bench`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from deltalake import DeltaTable

root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.home() / ".local/state/streamgate/lakehouse"

# pandas: load a (filtered) table into a DataFrame; partition filters prune files before reading
cost = DeltaTable(str(root / "gold" / "daily_cost")).to_pandas()
by_team = cost.groupby("team")["cost_nanousd"].sum().sort_values(ascending=False) / 1e9
print("spend per team (USD), pandas:\n", by_team.round(4).to_string(), "\n")

telemetry = DeltaTable(str(root / "bronze" / "telemetry"))
print("telemetry table version", telemetry.version(), "·", len(telemetry.file_uris()), "files")
slow = telemetry.to_pandas(columns=["provider", "model", "latency_ms"])
print("p95 latency per provider/model (ms), pandas:\n",
      slow.groupby(["provider", "model"])["latency_ms"].quantile(0.95).round(0).to_string(), "\n")

# Polars: lazy scan, so only the columns and rows the query needs are read
try:
    import polars as pl
except ImportError:
    print("Polars is not installed: uv sync --group bench")
else:
    facts = pl.scan_delta(str(root / "silver" / "request_facts"))
    print("outcomes, Polars:\n", facts.group_by("status").agg(pl.len().alias("requests"),
                                                          (pl.col("cost_nanousd").sum() / 1e9).alias("usd"))
          .sort("requests", descending=True).collect())
    # time travel: the table as it was at its first version (audits)
    first = pl.read_delta(str(root / "bronze" / "responses"), version=0)
    print("responses at version 0:", first.height, "rows")
