"""What metrics cost the hot paths, what a scrape costs, and how long the report takes on a big table.

- request path: `StageMeter.batch` once per 500-event batch (events in, outputs per topic, batch time),
  per event, against the stage's own time per event from bench/results/request-path.json if present;
- dispatcher: `metrics.observe` once per answered request (end-to-end histogram, one attempt's
  provider latency) plus `CountExport.publish` once per commit;
- a scrape of /metrics (text exposition) with every family populated;
- `streamgate report` (queries + SVG + HTML) over a bronze telemetry table of N attempts and its gold.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake
from prometheus_client import REGISTRY, generate_latest

from apps.report.data import load_report_data
from apps.report.page import render_page
from bench.harness import RESULTS, write_result
from gateway_consumer.answer import Outcome
from gateway_consumer.dispatch import metrics as dispatch_metrics
from lakehouse.gold import rebuild_all
from lakehouse.tables import BRONZE
from schemas.topics import Topic
from shared.traffic.telemetry import telemetry_events
from streamgate.config import load_settings
from streamgate.observability import CountExport
from streamgate.observability.metrics import set_breakers, set_lag
from streams.io import Output
from streams.metrics import StageMeter

N = 200_000
BATCH = 500


def _per_call(fn: object, calls: int) -> float:
    """Seconds per call (best of 3)."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()  # type: ignore[operator]
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


def _report(root: Path) -> tuple[float, int]:
    settings = load_settings().model_copy(update={"state_dir": root})
    schema = next(t for t in BRONZE if t.name == "telemetry").schema()
    rows = [e | {"_partition": i % 6, "_offset": i // 6, "_kafka_ts": e["ended_at"], "date": "2026-11-25"}
            for i, e in enumerate(telemetry_events(N, start_ms=1_795_564_800_000, span_ms=86_000_000))]
    path = settings.table_root() / "bronze" / "telemetry"
    for start in range(0, N, 50_000):
        write_deltalake(str(path), pa.Table.from_pylist(rows[start:start + 50_000], schema=schema),
                        mode="append", partition_by=["date"])
    rebuild_all(settings)
    t0 = time.perf_counter()
    page = render_page(load_report_data(settings))
    return time.perf_counter() - t0, len(page.encode())


def _share(seconds: float, bench: str, key: str) -> float | None:
    """`seconds` as a share of one item's time at the throughput that benchmark last measured."""
    path = RESULTS / f"{bench}.json"
    per_s = json.loads(path.read_text()).get(key) if path.exists() else None
    return seconds * per_s if per_s else None


def _of(share: float | None) -> str:
    return "" if share is None else f" ({share:.2%} of the time per item at its measured throughput)"


def main() -> None:
    names = {t: f"bench.{t}" for t in Topic}
    meter = StageMeter("bench", names)
    outputs = [Output(names[Topic.ROUTED], b"k", b"v")] * (BATCH - 5) + \
        [Output(names[Topic.DEADLETTER], b"k", b"v")] * 5
    stage_ns = _per_call(lambda: meter.batch(BATCH, outputs, 0.01), 2000) / BATCH * 1e9
    attempt = {"status": "ok", "provider": "openai", "latency_ms": 420.0, "cache_hit": False}
    outcome = Outcome({"status": "ok"}, [attempt], [])
    observe_us = _per_call(lambda: dispatch_metrics.observe(outcome, 0.43), 20_000) * 1e6
    counts: Counter[str] = Counter()
    export = CountExport(counts, dispatch_metrics.route)

    def commit() -> None:
        counts.update(("consumed", "answered_ok", "telemetry", "lookup_miss"))
        export.publish()

    publish_us = _per_call(commit, 20_000) * 1e6
    set_breakers({f"p{i}/m{j}": "closed" for i in range(5) for j in range(4)})
    set_lag("bench", {(f"topic{i}", p): 0 for i in range(7) for p in range(6)})
    scrape_ms = _per_call(lambda: generate_latest(REGISTRY), 200) * 1e3
    scrape_kb = len(generate_latest(REGISTRY)) / 1024
    with tempfile.TemporaryDirectory() as tmp:
        report_s, report_bytes = _report(Path(tmp))
    stage_share = _share(stage_ns / 1e9, "request-path", "pipeline_events_per_s")
    dispatch_share = _share(observe_us / 1e6, "dispatch", "requests_per_s")
    result = {"stage_metrics_ns_per_event": stage_ns, "dispatch_observe_us_per_request": observe_us,
              "count_publish_us_per_commit": publish_us, "scrape_ms": scrape_ms, "scrape_kib": scrape_kb,
              "report_rows": N, "report_s": report_s, "report_kib": report_bytes / 1024,
              "stage_metrics_share_of_event_time": stage_share,
              "dispatch_metrics_share_of_request_time": dispatch_share}
    write_result("observability", result, [
        ("request-path metrics per event (per-batch updates)", f"{stage_ns:,.0f} ns{_of(stage_share)}"),
        ("dispatcher metrics per answered request", f"{observe_us:,.1f} µs{_of(dispatch_share)}"),
        ("count export per commit", f"{publish_us:,.1f} µs"),
        ("one /metrics scrape (all families populated)", f"{scrape_ms:,.2f} ms, {scrape_kb:,.0f} KiB"),
        (f"`streamgate report` over {N:,} telemetry rows + gold", f"{report_s:,.2f} s, "
                                                                 f"{report_bytes / 1024:,.0f} KiB page"),
    ])
    print(json.dumps(result, indent=2))
