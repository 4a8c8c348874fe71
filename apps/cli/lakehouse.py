"""`streamgate lakehouse ...` and `streamgate query`: the Delta tables and SQL over them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from apps.cli.common import ConfigOption, MetricsPortOption, fail, settings_or_exit

app = typer.Typer(help="Kafka -> Delta Lake tables for analysts.", no_args_is_help=True)


@app.command()
def sink(
    instance: str = typer.Option("0", help="Stable id of this sink process (its group member id)."),
    metrics_port: int | None = MetricsPortOption,
    config: Path | None = ConfigOption,
) -> None:
    """Land every pipeline topic in its bronze Delta table, exactly once; run more to scale."""
    from lakehouse.sink import run_sink

    run_sink(settings_or_exit(config), instance=instance, metrics_port=metrics_port)


def query(
    sql: str = typer.Argument(..., help='SQL over the tables, e.g. "select team, sum(cost_nanousd) '
                              'from telemetry group by team".'),
    output: str = typer.Option("table", help="table, csv or json."),
    limit: int = typer.Option(1000, help="Rows to print at most (table output)."),
    config: Path | None = ConfigOption,
) -> None:
    """Run SQL over every Delta table (DataFusion, inside delta-rs); tables are named after the folder."""
    from shared.tables.query import run_query

    if output not in ("table", "csv", "json"):
        raise fail(f"unknown output {output!r}; choose table, csv or json", 2)
    settings = settings_or_exit(config)
    started = time.perf_counter()
    try:
        result = run_query(settings, sql)
    except Exception as exc:  # SQL errors, missing tables: say what went wrong, not a traceback
        raise fail(f"query failed: {exc}") from exc
    elapsed = time.perf_counter() - started
    if output == "json":
        typer.echo(json.dumps(result.to_pylist(), default=str, indent=2))
    elif output == "csv":
        import io

        import pyarrow.csv as pacsv

        buf = io.BytesIO()
        pacsv.write_csv(result, buf)
        typer.echo(buf.getvalue().decode())
    else:
        table = Table(caption=f"{result.num_rows:,} rows in {elapsed * 1000:,.0f} ms")
        for name in result.column_names:
            table.add_column(name)
        for row in result.slice(0, limit).to_pylist():
            table.add_row(*(str(v) for v in row.values()))
        Console().print(table)


@app.command()
def gold(
    date: list[str] = typer.Option(None, "--date", help="Only these dates (YYYY-MM-DD); default all."),
    config: Path | None = ConfigOption,
) -> None:
    """Recompute silver request facts, then rebuild the gold tables (cost, provider health, guardrails)."""
    from lakehouse.gold import gold_root, rebuild_all
    from lakehouse.silver import merge_request_facts

    settings = settings_or_exit(config)
    try:
        facts = merge_request_facts(settings, date or None)
        typer.echo(f"silver/request_facts: {facts:,} requests written")
        written = rebuild_all(settings, date or None)
    except Exception as exc:
        raise fail(f"gold rebuild failed: {exc}") from exc
    for name, rows in written.items():
        typer.echo(f"gold/{name}: {rows:,} rows written under {gold_root(settings)}")


@app.command()
def maintain(config: Path | None = ConfigOption) -> None:
    """Compact and z-order every table, write a checkpoint, vacuum beyond the retention."""
    from lakehouse.maintain import maintain_all

    settings = settings_or_exit(config)
    for care in maintain_all(settings):
        typer.echo(f"{care.table}: files {care.files_before} -> {care.files_after}, "
                   f"{care.vacuumed} unreferenced files removed")


@app.command()
def check(
    date: list[str] = typer.Option(None, "--date", help="Only rows of these dates (YYYY-MM-DD)."),
    config: Path | None = ConfigOption,
) -> None:
    """Run the Great Expectations suites over the tables; results to quality/results and report.html."""
    from lakehouse.quality import alert, record, run_checks

    settings = settings_or_exit(config)
    results = run_checks(settings, date or None)
    report = record(settings, results)
    alerts = alert(settings, results)
    failed = [r for r in results if not r.success]
    for r in failed:
        typer.secho(f"FAIL {r.table}.{r.column or '*'}: {r.expectation} ({r.unexpected:,} unexpected)",
                    fg="red")
    typer.echo(f"{len(results)} expectations, {len(failed)} failed, {alerts} alert events · report: {report}")
    if failed:
        raise typer.Exit(1)


@app.command()
def refine(
    every: float = typer.Option(60.0, help="Seconds between rounds of silver, gold and checks."),
    maintain_every: float = typer.Option(3600.0, help="Seconds between rounds of table care."),
    once: bool = typer.Option(False, "--once", help="Run one round and exit (for cron)."),
    config: Path | None = ConfigOption,
) -> None:
    """Keep silver, gold and the quality checks current (and the tables cared for) on a schedule."""
    import logging
    import signal

    from lakehouse.refine import refine_forever, refine_once

    settings = settings_or_exit(config)
    if once:
        done = refine_once(settings)
        typer.echo(f"{done.facts:,} facts merged · gold {done.gold_rows} · "
                   f"{done.checks - done.failed}/{done.checks} checks passed")
        raise typer.Exit(1 if done.failed else 0)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    running = [True]
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: running.__setitem__(0, False))
    refine_forever(settings, every, maintain_every, running)
