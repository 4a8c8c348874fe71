"""`streamgate gateway`: the fused worker, the request path and the dispatcher in one process."""

from __future__ import annotations

import socket
from pathlib import Path

import typer

from apps.cli.common import ConfigOption, MetricsPortOption, settings_or_exit

app = typer.Typer(help="Fused gateway worker: request path and dispatch in one process and transaction.",
                  no_args_is_help=True)


@app.command()
def worker(
    instance: str = typer.Option("0", help="This worker's id within the group (its transactional ids): give "
                                           "each worker its own, stable across restarts; `{hostname}` is "
                                           "replaced by the host's name."),
    metrics_port: int | None = MetricsPortOption,
    config: Path | None = ConfigOption,
) -> None:
    """Run one worker in place of a `streams worker` and a `dispatch worker`; start more to scale."""
    from apps.cli.streams import use_feature_store
    from apps.gateway.worker import run_gateway

    run_gateway(settings_or_exit(config), instance=instance.format(hostname=socket.gethostname()),
                metrics_port=metrics_port, wire=use_feature_store)
