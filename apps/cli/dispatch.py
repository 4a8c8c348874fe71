"""`streamgate dispatch` and `streamgate simulator`: the gateway consumer and its test provider."""

from __future__ import annotations

from pathlib import Path

import typer

from apps.cli.common import ConfigOption, MetricsPortOption, settings_or_exit

app = typer.Typer(help="Gateway consumer: dispatch routed requests to providers.", no_args_is_help=True)


@app.command()
def worker(
    instance: str = typer.Option("0", help="Stable id of this dispatcher (its Kafka transactional id)."),
    metrics_port: int | None = MetricsPortOption,
    config: Path | None = ConfigOption,
) -> None:
    """Run one dispatcher; start more with distinct --instance ids to scale."""
    from gateway_consumer.worker import run_dispatcher

    run_dispatcher(settings_or_exit(config), instance=instance, metrics_port=metrics_port)


def simulator(
    port: int | None = typer.Option(None, help="Port (default: simulator.port from the config)."),
    profiles: Path | None = typer.Option(None, help="Profiles YAML (default: simulator.profiles)."),
    seed: int | None = typer.Option(None, help="Seed for latency and failure draws."),
    metrics_port: int | None = MetricsPortOption,
    config: Path | None = ConfigOption,
) -> None:
    """Run the OpenAI-compatible provider simulator (also serves Anthropic /v1/messages)."""
    from gateway_consumer.simulator import serve
    from streamgate.observability import serve_metrics

    settings = settings_or_exit(config)
    sim = settings.simulator
    heartbeat = serve_metrics(settings, "simulator", metrics_port)
    serve(sim.host, port or sim.port, profiles or sim.profiles, seed, heartbeat)
