"""`streamgate streams`: the request-path stream processors."""

from __future__ import annotations

from pathlib import Path

import typer

from streamgate.cli.common import ConfigOption, MetricsPortOption, settings_or_exit

app = typer.Typer(help="Request path: validation, guardrails, budgets and routing (faust agents).",
                  no_args_is_help=True)


@app.command()
def worker(
    exactly_once: bool = typer.Option(False, "--exactly-once", help="Kafka transactions for sends+offsets."),
    web_port: int | None = typer.Option(None, help="Serve faust's web endpoints on this port."),
    loglevel: str = typer.Option("warn", help="crit | error | warn | info | debug"),
    metrics_port: int | None = MetricsPortOption,
    config: Path | None = ConfigOption,
) -> None:
    """Run one worker; start more to scale (they share partitions as a consumer group)."""
    from streams.worker import run_worker

    run_worker(settings_or_exit(config), exactly_once=exactly_once, web_port=web_port, loglevel=loglevel,
               metrics_port=metrics_port)
