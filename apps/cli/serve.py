"""`streamgate serve`: the OpenAI- and Anthropic-compatible front door (with `--all`, the whole pipeline)."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import typer

from apps.cli.common import ConfigOption, settings_or_exit
from streamgate import eventloop

if TYPE_CHECKING:
    from streamgate.config import Settings


def serve(
    host: str | None = typer.Option(None, help="Listen address (default: frontdoor.host, 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default: frontdoor.port, 8080)."),
    reply_partition: int | None = typer.Option(None, help="This instance's partition of `replies` (default: "
                                               "frontdoor.reply_partition, else random); one per instance."),
    all_stages: bool = typer.Option(False, "--all", help="Also start what the front door needs: the local "
                                    "broker if none is configured, the topics, the provider simulator, the "
                                    "request path, dispatcher, aggregator and lakehouse sink; Ctrl-C stops "
                                    "them all."),
    config: Path | None = ConfigOption,
) -> None:
    """Serve /v1/chat/completions, /v1/messages, /v1/models, /healthz and /metrics over the stream."""
    from frontdoor.serve import run_frontdoor

    settings = settings_or_exit(config)
    updates = {k: v for k, v in (("host", host), ("port", port), ("reply_partition", reply_partition))
               if v is not None}
    if updates:
        settings = settings.model_copy(update={"frontdoor": settings.frontdoor.model_copy(update=updates)})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not all_stages:
        eventloop.run(run_frontdoor(settings, ready=_announce), settings.event_loop)
        return
    _serve_with_stages(settings)


def _announce(url: str) -> None:
    typer.secho(f"streamgate front door on {url}/v1  (OpenAI: base_url={url}/v1, Anthropic: base_url={url})",
                fg="green", err=True)


def _serve_with_stages(settings: Settings) -> None:
    from rich.console import Console

    from apps.demo.processes import Components, use_free_metrics_ports
    from apps.stack import start_infrastructure, start_simulator, start_stages, stop_broker_on_interrupt
    from frontdoor.serve import run_frontdoor

    console = Console(stderr=True)
    signal.signal(signal.SIGTERM, _interrupt)
    started = start_infrastructure(settings, console)
    settings = use_free_metrics_ports(settings)
    try:
        with stop_broker_on_interrupt(settings, started), Components(settings, name="serve") as components:
            simulator = start_simulator(settings, components)
            console.print(f"[bold]simulator[/] {simulator.url}")
            start_stages(components, settings)
            console.print(f"[bold]stages[/] {', '.join(components.procs)} (logs: {components.logs})")
            eventloop.run(run_frontdoor(settings, ready=_announce), settings.event_loop)
    except KeyboardInterrupt:
        typer.secho("stopped; every process `serve --all` started was stopped", fg="yellow", err=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
