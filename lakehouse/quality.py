"""Data quality with Great Expectations (GX Core, ephemeral context): one suite per table.

Checks run on whole tables (or the dates given) as DataFrames — in batches, never per event. Each run's
results are appended to the Delta table `quality/results`, rendered as `quality/report.html`, and every
failed expectation is published as an audit event (`action=quality_alert`), so a failure is seen, not
just stored. Referential checks (every silver request has its bronze response) and freshness are
expectations too, with their inputs computed in SQL.
"""

from __future__ import annotations

import html
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from shared.tables.delta import write_table
from shared.tables.query import find_tables, run_query
from streamgate.config import Settings

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


@dataclass(frozen=True)
class CheckResult:
    table: str
    expectation: str
    column: str
    success: bool
    unexpected: int
    rows: int


def _suites(settings: Settings, now_ms: int) -> dict[str, list[Any]]:
    import great_expectations as gx

    e = gx.expectations
    fresh = pa.scalar(now_ms - 86_400_000, pa.timestamp("ms", tz="UTC")).as_py()
    suites: dict[str, list[Any]] = {
        "responses": [
            e.ExpectColumnValuesToNotBeNull(column="request_id"),
            e.ExpectColumnValuesToBeUnique(column="request_id"),  # exactly one final answer each
            e.ExpectColumnValuesToBeInSet(column="status", value_set=["ok", "failed", "rejected"]),
            e.ExpectColumnValuesToBeBetween(column="cost_nanousd", min_value=0),
            e.ExpectColumnMaxToBeBetween(column="_kafka_ts", min_value=fresh),  # fresh within a day
        ],
        "telemetry": [
            e.ExpectColumnValuesToBeUnique(column="event_id"),
            e.ExpectColumnValuesToNotBeNull(column="provider"),
            e.ExpectColumnValuesToBeInSet(column="status", value_set=["ok", "error"]),
            e.ExpectColumnValuesToBeBetween(column="cost_nanousd", min_value=0),
            e.ExpectColumnValuesToBeBetween(column="prompt_tokens", min_value=0),
            e.ExpectColumnValuesToBeBetween(column="latency_ms", min_value=0, max_value=600_000),
        ],
        "requests": [
            e.ExpectColumnValuesToNotBeNull(column="request_id"),
            e.ExpectColumnValuesToNotBeNull(column="team"),
        ],
        "silver_request_facts": [
            e.ExpectColumnValuesToBeUnique(column="request_id"),
            e.ExpectColumnValuesToBeBetween(column="attempts", min_value=0),
            e.ExpectColumnValuesToBeBetween(column="cost_nanousd", min_value=0),
        ],
    }
    return suites


def _referential(settings: Settings) -> tuple[str, Any] | None:
    """Silver requests without a bronze response: the count must be zero."""
    import great_expectations as gx

    have = set(find_tables(settings.table_root()))
    if not {"silver_request_facts", "responses"} <= have:
        return None
    orphans = run_query(settings, "select count(*) as orphans from silver_request_facts f left join "
                                  "responses r on r.request_id = f.request_id where r.request_id is null")
    none = gx.expectations.ExpectColumnValuesToBeBetween(column="orphans", max_value=0)
    return "silver_request_facts", (orphans.to_pandas(), none)


def run_checks(settings: Settings) -> list[CheckResult]:
    import great_expectations as gx

    now_ms = int(time.time() * 1000)
    tables = find_tables(settings.table_root())
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # no tqdm bars on the caller's console (the demo's summary calls this): results are reported instead
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas("lakehouse")
    results: list[CheckResult] = []

    def validate(name: str, frame: Any, expectations: list[Any]) -> None:
        asset = source.add_dataframe_asset(f"{name}-{uuid.uuid4().hex[:6]}")
        definition = asset.add_batch_definition_whole_dataframe("all")
        batch = definition.get_batch(batch_parameters={"dataframe": frame})
        suite = context.suites.add(gx.ExpectationSuite(name=f"{name}-{uuid.uuid4().hex[:6]}"))
        for expectation in expectations:
            suite.add_expectation(expectation)
        run = batch.validate(suite)
        for r in run.results:
            config = r.expectation_config
            assert config is not None
            column = str(config.kwargs.get("column", ""))
            results.append(CheckResult(name, config.type, column, bool(r.success),
                                       int(r.result.get("unexpected_count") or 0), len(frame)))

    for name, expectations in _suites(settings, now_ms).items():
        if name in tables:
            columns = sorted({x.column for x in expectations})
            frame = run_query(settings, f"select {', '.join(columns)} from {name}").to_pandas()
            validate(name, frame, expectations)
    if (ref := _referential(settings)) is not None:
        name, (frame, expectation) = ref
        validate(name, frame, [expectation])
    return results


def record(settings: Settings, results: list[CheckResult]) -> Path:
    """Append the run to `quality/results` and write `quality/report.html` (under the state directory
    when the tables are on object storage); returns the report path."""
    root = settings.table_root() / "quality"
    run_id, now = uuid.uuid4().hex, int(time.time() * 1000)
    rows = pa.table({
        "run_id": [run_id] * len(results),
        "run_at": pa.array([now] * len(results), pa.timestamp("ms", tz="UTC")),
        "table_name": [r.table for r in results], "expectation": [r.expectation for r in results],
        "column_name": [r.column for r in results], "success": [r.success for r in results],
        "unexpected_count": pa.array([r.unexpected for r in results], pa.int64()),
        "rows_checked": pa.array([r.rows for r in results], pa.int64()),
    })
    write_table(root / "results", rows, mode="append")
    report = (root if isinstance(root, Path) else settings.state_dir / "quality") / "report.html"
    report.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(
        f"<tr class={'ok' if r.success else 'fail'}><td>{html.escape(r.table)}</td>"
        f"<td>{html.escape(r.expectation)}</td><td>{html.escape(r.column)}</td>"
        f"<td>{'pass' if r.success else 'FAIL'}</td><td>{r.unexpected:,}</td><td>{r.rows:,}</td></tr>"
        for r in results)
    failed = sum(not r.success for r in results)
    report.write_text(
        "<!doctype html><meta charset=utf-8><title>streamgate data quality</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;border-bottom:1px solid #ddd}"
        ".fail{background:#fde2e2}.ok{background:#e6f6e6}</style>"
        f"<h1>Data quality</h1><p>run {run_id} · {len(results)} expectations · {failed} failed</p>"
        "<table><tr><th>table</th><th>expectation</th><th>column</th><th>result</th>"
        f"<th>unexpected</th><th>rows</th></tr>{body}</table>")
    return report


def alert(settings: Settings, results: list[CheckResult]) -> int:
    """One audit event per failed expectation; returns how many."""
    from confluent_kafka import Producer

    from schemas import make_codec
    from schemas.topics import Topic, physical_name
    from streamgate.kafka.clients import producer_config

    failed = [r for r in results if not r.success]
    if not failed:
        return 0
    topic = physical_name(Topic.AUDIT, settings.kafka.topic_prefix)
    codec = make_codec(topic, "AuditEvent", settings.schema_registry.url)
    producer = Producer(producer_config(settings, client_id="quality", role="lakehouse"))
    for r in failed:
        event = {"event_id": str(uuid.uuid4()), "occurred_at": int(time.time() * 1000), "actor": "quality",
                 "action": "quality_alert", "resource": f"table:{r.table}", "decision": "alert",
                 "reason": f"{r.expectation} failed on {r.column or 'the table'}: {r.unexpected} unexpected",
                 "request_id": None, "team": None, "config_version": None,
                 "details": {"expectation": r.expectation, "column": r.column, "rows": str(r.rows)}}
        producer.produce(topic, codec.encode(event), f"table:{r.table}".encode())
    producer.flush(30)
    return len(failed)
