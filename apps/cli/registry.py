"""`streamgate schema-registry`: a local Confluent-compatible registry for the Confluent wire format."""

from __future__ import annotations

from pathlib import Path

import typer

from apps.cli.common import ConfigOption, settings_or_exit

app = typer.Typer(help="A local Confluent-compatible schema registry (stored on a compacted topic).",
                  no_args_is_help=True)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8081, help="Port to listen on."),
    config: Path | None = ConfigOption,
) -> None:
    """Serve the registry until interrupted; schemas live on the `<prefix>_schemas` topic."""
    from streamgate.registry.server import serve as run

    settings = settings_or_exit(config)
    typer.echo(f"schema registry on http://{host}:{port} (kafka {settings.kafka.bootstrap()})")
    run(settings, host, port, topic=f"{settings.kafka.topic_prefix}_schemas")
