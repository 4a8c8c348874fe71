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

from lakehouse.slices import dates_in, slice_count, slice_of, valid_dates
from shared.tables.delta import write_table
from shared.tables.query import find_tables, run_query, stream_query
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


#: Rows per validated batch: a batch's DataFrame, not the table, bounds the memory of a check.
BATCH_ROWS = 100_000

#: Expectations about single values, true of a table when true of each of its batches.
ROW_WISE = ("expect_column_values_to_not_be_null", "expect_column_values_to_be_in_set",
            "expect_column_values_to_be_between")


class _Validator:
    """GX over pandas frames, one ephemeral context per run."""

    def __init__(self) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.context = gx.get_context(mode="ephemeral")
        # no tqdm bars on the caller's console (the demo's summary calls this): results are reported instead
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        self.source = self.context.data_sources.add_pandas("lakehouse")

    def _forget_batches(self) -> None:
        """GX's pandas engine caches every batch's frame and computed metrics for the life of the
        context; a batch is validated once, so both go (private attributes of GX 1.x, used defensively)."""
        engine = self.source.get_execution_engine()
        engine.batch_manager.reset_batch_cache()
        engine.batch_manager.batch_data_cache.clear()
        cache = getattr(engine, "_metric_cache", None)
        if isinstance(cache, dict):
            cache.clear()

    def __call__(self, name: str, frame: Any, expectations: list[Any]) -> list[tuple[Any, bool, int]]:
        """(expectation, success, unexpected count) of each expectation on `frame`."""
        import great_expectations as gx

        asset_name, suite_name = f"{name}-{uuid.uuid4().hex[:6]}", f"{name}-{uuid.uuid4().hex[:6]}"
        asset = self.source.add_dataframe_asset(asset_name)
        batch = asset.add_batch_definition_whole_dataframe("all").get_batch(
            batch_parameters={"dataframe": frame})
        suite = self.context.suites.add(gx.ExpectationSuite(name=suite_name))
        for expectation in expectations:  # a copy each time: an expectation belongs to one suite
            suite.add_expectation(expectation.copy(update={"id": None}))
        try:
            run = batch.validate(suite)
        finally:  # the context keeps every asset, suite, frame and metric it saw: ~8 MB a batch
            self.context.suites.delete(suite_name)
            self.source.delete_asset(asset_name)
            self._forget_batches()
        return [(expectation, bool(r.success), int(r.result.get("unexpected_count") or 0))
                for expectation, r in zip(expectations, run.results, strict=True)]


def run_checks(settings: Settings, dates: list[str] | None = None) -> list[CheckResult]:
    """Every suite on the rows of `dates` (all rows when None), with memory bounded by a batch: value
    checks run batch by batch, uniqueness slice by slice of ids, the freshness on the table's max."""
    valid = valid_dates(dates)
    where = dates_in(valid)
    tables = find_tables(settings.table_root())
    validate = _Validator()
    results: list[CheckResult] = []
    for name, expectations in _suites(settings, int(time.time() * 1000)).items():
        if name not in tables:
            continue
        row_wise = [x for x in expectations if x.expectation_type in ROW_WISE]
        failed: dict[int, int] = {id(x): 0 for x in row_wise}  # unexpected values so far
        passed = {id(x): True for x in row_wise}
        rows = 0
        sql = f"select {', '.join(sorted({x.column for x in row_wise}))} from {name} where {where}"
        for batch in stream_query(settings, sql, BATCH_ROWS):
            rows += batch.num_rows
            for expectation, success, unexpected in validate(name, batch.to_pandas(), row_wise):
                passed[id(expectation)] &= success
                failed[id(expectation)] += unexpected
        for x in expectations:
            if x.expectation_type in ROW_WISE:
                result = CheckResult(name, x.expectation_type, x.column, passed[id(x)], failed[id(x)], rows)
            elif x.expectation_type == "expect_column_values_to_be_unique":
                result = _unique(settings, validate, name, x.column, where, rows)
            else:
                result = _aggregate(settings, validate, name, x, where, rows)
            results.append(result)
    if {"silver_request_facts", "responses"} <= set(tables):
        results.append(_referential(settings, validate, valid))
    return results


def _aggregate(settings: Settings, validate: _Validator, name: str, expectation: Any, where: str,
               rows: int) -> CheckResult:
    """A column's max, computed in SQL and checked by GX on that one value."""
    column = expectation.column
    value = run_query(settings, f"select max({column}) as {column} from {name} where {where}").to_pandas()
    ((_, success, _),) = validate(name, value, [expectation])
    return CheckResult(name, expectation.expectation_type, column, success, int(not success), rows)


def _unique(settings: Settings, validate: _Validator, name: str, column: str, where: str,
            rows: int) -> CheckResult:
    """Rows whose value is not unique (every copy, as GX counts them), counted slice by slice of ids (a
    value and its copies share a slice), their sum checked by GX: the column's uniqueness without
    holding the column."""
    import great_expectations as gx
    import pandas as pd

    slices = slice_count(settings, name, where)
    counts = [_scalar(settings, f"select sum(n) from (select count(*) as n from {name} where {where} and "
                                f"{slice_of(i, slices, column)} and {column} is not null group by {column} "
                                "having count(*) > 1)") for i in range(slices)]
    none = gx.expectations.ExpectColumnSumToBeBetween(column="duplicates", max_value=0)
    ((_, success, _),) = validate(name, pd.DataFrame({"duplicates": counts}), [none])
    return CheckResult(name, "expect_column_values_to_be_unique", column, success, sum(counts), rows)


def _referential(settings: Settings, validate: _Validator, dates: list[str]) -> CheckResult:
    """Silver requests without a bronze response, counted slice by slice: the sum must be zero."""
    import great_expectations as gx
    import pandas as pd

    name = "silver_request_facts"
    slices = slice_count(settings, name, dates_in(dates))
    orphans = [_scalar(settings, f"select count(*) from (select request_id from {name} f where "
                                 f"{dates_in(dates, 'f.date')} and {slice_of(i, slices, 'f.request_id')}) f "
                                 "left join (select request_id from responses r where "
                                 f"{dates_in(dates, 'r.date')} and {slice_of(i, slices, 'r.request_id')}) r "
                                 "on r.request_id = f.request_id where r.request_id is null")
               for i in range(slices)]
    none = gx.expectations.ExpectColumnSumToBeBetween(column="orphans", max_value=0)
    ((_, success, _),) = validate(name, pd.DataFrame({"orphans": orphans}), [none])
    rows = _scalar(settings, f"select count(*) from {name} where {dates_in(dates)}")
    return CheckResult(name, "expect_column_values_to_be_between", "orphans", success, sum(orphans), rows)


def _scalar(settings: Settings, sql: str) -> int:
    return int(run_query(settings, sql).column(0)[0].as_py() or 0)


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
