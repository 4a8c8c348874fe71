"""Bronze sink throughput against its limit: a plain `write_deltalake` of the same rows.

- sink: N telemetry events already on the broker, consumed, decoded to Arrow in batches, appended to
  the bronze Delta table with the offsets in the same transaction (`BronzeSink`), until all are in;
  timed from the first record consumed to the last commit (a running sink joins its group once).
- limit: the same rows pre-built as Arrow tables (same schema, same date partitioning, same rows per
  commit) appended with `write_deltalake`: no Kafka, no decoding, no application transactions.
- context: a bare confluent-kafka consumer that only consumes (the floor of any Kafka sink), and one
  that decodes the events one by one with fastavro (what the sink cost before it decoded in batches).
"""

from __future__ import annotations

import shutil
import time
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from bench.aggregation import N, _bare, _fill, _settings
from bench.harness import write_result
from lakehouse.sink import BronzeSink, bronze_root
from lakehouse.tables import BRONZE
from shared.traffic.telemetry import telemetry_events
from streamgate.config import Settings

TELEMETRY = next(t for t in BRONZE if t.name == "telemetry")


def _raw_write(settings: Settings, events: list[dict[str, Any]]) -> float:
    """Rows/s of appending pre-built Arrow tables, `batch_rows` per commit, partitioned by date."""
    batch = settings.lakehouse.batch_rows
    schema = TELEMETRY.schema()
    tables = []
    for start in range(0, len(events), batch):
        rows = [e | {"_partition": 0, "_offset": start + i, "_kafka_ts": e["ended_at"],
                     "date": time.strftime("%Y-%m-%d", time.gmtime(e["ended_at"] / 1000))}
                for i, e in enumerate(events[start:start + batch])]
        tables.append(pa.Table.from_pylist(rows, schema=schema))
    path = settings.state_dir / "bench-raw-write"
    shutil.rmtree(path, ignore_errors=True)
    t0 = time.perf_counter()
    for table in tables:
        write_deltalake(str(path), table, mode="append", partition_by=["date"])
    elapsed = time.perf_counter() - t0
    assert DeltaTable(str(path)).to_pyarrow_dataset().count_rows() == len(events)
    return len(events) / elapsed


def main() -> None:
    settings = _settings()
    root = settings.state_dir / f"bench-lakehouse-{settings.kafka.topic_prefix.rstrip('.')}"
    lakehouse = settings.lakehouse.model_copy(update={"root": str(root)})
    settings = settings.model_copy(update={"lakehouse": lakehouse})
    now = int(time.time() * 1000)
    events = list(telemetry_events(N, start_ms=now - 60_000, span_ms=60_000))
    _fill(settings, events)
    raw = _raw_write(settings, events)
    bare = _bare(settings)
    consume_only = _bare(settings, decode=False)
    sink = BronzeSink(settings, instance="bench", tables=(TELEMETRY,))
    counts = sink.run(idle_exit_s=2.0)
    # steady state: first record consumed to last commit (not the group join, not the idle tail)
    assert sink.first_record_at is not None and sink.last_commit_at is not None
    elapsed = sink.last_commit_at - sink.first_record_at
    assert counts.get("rows:telemetry") == N, counts
    table = DeltaTable(str(bronze_root(settings) / "telemetry"))
    files = len(table.file_uris())
    ours = N / elapsed
    result = {"events": N, "sink_rows_per_s": ours, "raw_write_rows_per_s": raw, "ratio": ours / raw,
              "per_record_consume_decode_per_s": bare, "consume_only_per_s": consume_only,
              "delta_commits": counts["commits"], "files": files,
              "rows_per_file": N / files, "batch_rows": settings.lakehouse.batch_rows}
    rows = [
        ("bronze sink (consume, batch decode to Arrow, Delta append + offsets)", f"{ours:,.0f} rows/s"),
        ("limit: write_deltalake of the same rows pre-built as Arrow", f"{raw:,.0f} rows/s"),
        ("sink / limit", f"{ours / raw:.2f}"),
        ("context: consume alone (no decode, no write)", f"{consume_only:,.0f} rows/s"),
        ("context: consume + per-record fastavro decode (the old sink)", f"{bare:,.0f} rows/s"),
        ("Delta commits / files / rows per file", f"{counts['commits']} / {files} / {N / files:,.0f}"),
        ("targets", ">= 50,000 rows/s; sink / limit >= 0.7"),
    ]
    shutil.rmtree(root, ignore_errors=True)
    write_result("sink", result, rows)
    for k, v in rows:
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
