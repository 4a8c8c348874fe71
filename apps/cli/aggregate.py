"""`streamgate aggregate worker` and `streamgate usage`: windowed cost and usage."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from apps.cli.common import ConfigOption, MetricsPortOption, fail, settings_or_exit

app = typer.Typer(help="Cost and usage aggregation over telemetry.", no_args_is_help=True)
DIMENSIONS = ("team", "project", "api_key", "model", "provider")


@app.command()
def worker(
    instance: str = typer.Option("0", help="Stable id of this aggregator (its Kafka transactional id)."),
    metrics_port: int | None = MetricsPortOption,
    config: Path | None = ConfigOption,
) -> None:
    """Run one aggregator; start more with distinct --instance ids to scale (partitions are shared out)."""
    from aggregation.loop import run_aggregator

    run_aggregator(settings_or_exit(config), instance=instance, metrics_port=metrics_port)


def usage(
    by: str = typer.Option("team", help=f"Dimension: {', '.join(DIMENSIONS)}."),
    window: str = typer.Option("1d", help="Window: 1m, 1h or 1d."),
    since: str | None = typer.Option(None, help="Only windows starting at or after this UTC date/time "
                                     "(ISO 8601, e.g. 2026-11-25 or 2026-11-25T10:00)."),
    output: str = typer.Option("table", help="table, csv or json."),
    as_json: bool = typer.Option(False, "--json", help="Same as --output json."),
    config: Path | None = ConfigOption,
) -> None:
    """Usage and cost per window and dimension value, summed over every telemetry partition, beside the
    limits that apply (budgets in config/gateway.yaml, for teams and keys)."""
    from aggregation.restore import iter_committed_rows
    from schemas import make_codec
    from schemas.topics import Topic, physical_name
    from shared.usage.live import totals

    if by not in DIMENSIONS:
        raise fail(f"unknown dimension {by!r}; choose one of {', '.join(DIMENSIONS)}", 2)
    if window not in ("1m", "1h", "1d"):
        raise fail(f"unknown window {window!r}; choose 1m, 1h or 1d", 2)
    output = "json" if as_json else output
    if output not in ("table", "csv", "json"):
        raise fail(f"unknown output {output!r}; choose table, csv or json", 2)
    try:
        since_ms = int(datetime.fromisoformat(since).replace(tzinfo=UTC).timestamp() * 1000) if since else 0
    except ValueError as exc:
        raise fail(f"--since {since!r} is not an ISO 8601 date or time", 2) from exc
    settings = settings_or_exit(config)
    topic = physical_name(Topic.AGGREGATES, settings.kafka.topic_prefix)
    codec = make_codec(topic, "UsageAggregate", settings.schema_registry.url)
    try:  # one row at a time: the topic holds every version of every row until it is compacted
        grouped = totals(iter_committed_rows(settings, topic, codec, timeout_s=60, role="admin"))
    except Exception as exc:  # broker down, topic missing: say which
        raise fail(f"could not read {topic}: {exc}") from exc
    found = sorted((t for (w, start, d, _), t in grouped.items()
                    if w == window and d == by and start >= since_ms),
                   key=lambda t: (t.window_start, -t.counts["cost_nanousd"]))
    records = [{
        "window_start": datetime.fromtimestamp(t.window_start / 1000, UTC).isoformat(timespec="minutes"),
        by: t.value, "requests": t.counts["requests"], "attempts": t.counts["attempts"],
        "errors": t.counts["errors"], "cache_hits": t.counts["cache_hits"],
        "tokens_in": t.counts["prompt_tokens"], "tokens_out": t.counts["completion_tokens"],
        "cost_usd": f"{t.counts['cost_nanousd'] / 1e9:.6f}", "cost_nanousd": t.counts["cost_nanousd"],
        "p50_ms": _ms(t.quantile(0.5)), "p95_ms": _ms(t.quantile(0.95)), "p99_ms": _ms(t.quantile(0.99)),
        "late_events": t.counts["late_events"], **_limits(by, t.value),
    } for t in found]
    if output == "json":
        typer.echo(json.dumps(records, indent=2))
    elif output == "csv":
        if records:
            typer.echo(",".join(records[0]))
            for r in records:
                typer.echo(",".join(str(v) for v in r.values()))
    else:
        # the table keeps what fits a terminal; csv and json carry every column
        columns = ("window_start", by, "requests", "errors", "cache_hits", "cost_usd", "p95_ms",
                   "limit_usd_day", "limit_rpm")
        table = Table(title=f"usage per {by}, {window} windows (as of {time.strftime('%H:%M:%S')})")
        for column in columns:
            table.add_column(column, justify="left" if column in ("window_start", by) else "right",
                             overflow="fold")
        for r in records:
            table.add_row(*(str(r[c]) for c in columns))
        Console(width=max(Console().width, 120)).print(table)


def _limits(by: str, value: str) -> dict[str, str]:
    """The budget of a team (or of a key, whose budgets are keyed `team/<hash>`), as printed columns."""
    from shared.policy.config import load_policy

    budgets = load_policy().budgets
    limit = budgets.get(value) if by == "team" else next(
        (b for k, b in budgets.items() if by == "api_key" and k.endswith("/" + value)), None)
    if limit is None:
        return {"limit_usd_day": "", "limit_rpm": ""}
    day = "" if limit.daily_nanousd is None else f"{limit.daily_nanousd / 1e9:.6f}"
    return {"limit_usd_day": day, "limit_rpm": str(limit.requests_per_minute or "")}


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"
