"""Bronze sink throughput against its floor.

The sink (decode, Arrow conversion, Delta append with the offsets in the same transaction) over N
telemetry events already on the broker, vs the floor: a bare confluent-kafka consumer decoding the same
events. Also reported: files written and mean rows per file (batching keeps files from being tiny).
"""

from __future__ import annotations

import time

from deltalake import DeltaTable

from bench.aggregation import N, _bare, _fill, _settings
from bench.harness import write_result
from lakehouse.sink import BronzeSink, bronze_root
from lakehouse.tables import BRONZE
from streamgate.demo.telemetry import telemetry_events


def main() -> None:
    settings = _settings()
    now = int(time.time() * 1000)
    _fill(settings, list(telemetry_events(N, start_ms=now - 60_000, span_ms=60_000)))
    bare = _bare(settings)
    telemetry_only = tuple(t for t in BRONZE if t.name == "telemetry")
    sink = BronzeSink(settings, instance="bench", tables=telemetry_only)
    t0 = time.perf_counter()
    counts = sink.run(idle_exit_s=2.0)
    elapsed = time.perf_counter() - t0 - 2.0
    assert counts.get("rows:telemetry") == N, counts
    table = DeltaTable(str(bronze_root(settings) / "telemetry"))
    files = len(table.file_uris())
    ours = N / elapsed
    result = {"events": N, "sink_events_per_s": ours, "bare_consume_decode_per_s": bare, "ratio": ours / bare,
              "delta_commits": counts["commits"], "files": files, "rows_per_file": N / files,
              "batch_rows": settings.lakehouse.batch_rows}
    rows = [
        ("bronze sink (decode, Arrow, Delta append + offsets)", f"{ours:,.0f} events/s"),
        ("floor: bare consume + Avro decode", f"{bare:,.0f} events/s"),
        ("sink / floor", f"{ours / bare:.2f}"),
        ("Delta commits / files / rows per file", f"{counts['commits']} / {files} / {N / files:,.0f}"),
    ]
    write_result("sink", result, rows)
    for k, v in rows:
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
