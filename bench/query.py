"""Which engine answers analysts' SQL over the Delta tables: measured, not assumed.

One bronze `telemetry` table of N rows (written by the sink's own schema), three typical questions
(cost by team; latency p95 by provider/model; one team's attempts per model on one day), each engine
reading the Delta table itself: DataFusion inside delta-rs (QueryBuilder, what `streamgate query`
uses), DuckDB over the table's Arrow dataset (its delta extension is downloaded at run time, which a
fresh machine here cannot do), Polars (`scan_delta` + SQL), and pandas (`to_pandas` + groupby) as the
baseline analysts start from. Median of 5 runs per query.
"""

from __future__ import annotations

import importlib
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder, write_deltalake

from bench.harness import median_ms, write_result
from lakehouse.tables import BRONZE
from shared.traffic.telemetry import telemetry_events

N = 300_000
QUERIES = {
    "cost by team": "select team, sum(cost_nanousd) as cost from telemetry group by team",
    "p95 latency by provider/model": "select provider, model, approx_percentile_cont(latency_ms, 0.95) "
                                     "as p95 from telemetry group by provider, model",
    "one team's attempts per model": "select model, count(*) as n from telemetry where team = 'search' "
                                     "and date = '2026-11-25' group by model",
}


def _table(root: Path) -> Path:
    schema = next(t for t in BRONZE if t.name == "telemetry").schema()
    rows = []
    for i, e in enumerate(telemetry_events(N, start_ms=1_795_000_000_000, span_ms=86_400_000)):
        rows.append(e | {"_partition": i % 6, "_offset": i // 6, "_kafka_ts": e["ended_at"],
                         "date": "2026-11-25" if i % 2 else "2026-11-24"})
    path = root / "telemetry"
    for start in range(0, N, 50_000):  # several files, as the sink writes them
        write_deltalake(str(path), pa.Table.from_pylist(rows[start:start + 50_000], schema=schema),
                        mode="append", partition_by=["date"])
    return path


def main() -> None:
    # the bench group's engines, typed as Any: absent from the environment CI type-checks in
    duckdb: Any = importlib.import_module("duckdb")
    pl: Any = importlib.import_module("polars")

    with tempfile.TemporaryDirectory() as tmp:
        path = _table(Path(tmp))

        def datafusion(sql: str) -> Any:
            return QueryBuilder().register("telemetry", DeltaTable(str(path))).execute(sql).read_all()

        def duck(sql: str) -> Any:
            telemetry = DeltaTable(str(path)).to_pyarrow_dataset()  # noqa: F841 - read by name in the SQL
            return duckdb.sql(sql.replace("approx_percentile_cont(latency_ms, 0.95)",
                                          "approx_quantile(latency_ms, 0.95)")).arrow()

        def polars(sql: str) -> Any:
            ctx = pl.SQLContext(telemetry=pl.scan_delta(str(path)))
            return ctx.execute(sql.replace("approx_percentile_cont(latency_ms, 0.95)",
                                           "quantile_cont(latency_ms, 0.95)")).collect()

        def pandas(name: str) -> Any:
            df = DeltaTable(str(path)).to_pandas()
            if name == "cost by team":
                return df.groupby("team")["cost_nanousd"].sum()
            if name.startswith("p95"):
                return df.groupby(["provider", "model"])["latency_ms"].quantile(0.95)
            return df[(df.team == "search") & (df.date == "2026-11-25")].groupby("model").size()

        result: dict[str, Any] = {"rows": N, "ms": {}}
        table = []
        for name, sql in QUERIES.items():
            times = {"datafusion": median_ms(partial(datafusion, sql)),
                     "duckdb": median_ms(partial(duck, sql)),
                     "polars": median_ms(partial(polars, sql)), "pandas": median_ms(partial(pandas, name))}
            result["ms"][name] = times
            table.append((name, " · ".join(f"{k} {v:,.0f} ms" for k, v in times.items())))
        write_result("query", result, [("rows in telemetry", f"{N:,}"), *table])
        for k, v in table:
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
