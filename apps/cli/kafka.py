"""`streamgate kafka`: the local single-node KRaft broker."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from apps.cli.common import ConfigOption, fail, settings_or_exit
from streamgate.kafka.launcher import KafkaLauncherError, LocalKafka, resolve_classpath

app = typer.Typer(help="Run the local Apache Kafka broker (KRaft), or check the configured cluster.",
                  no_args_is_help=True)


@app.command()
def up(config: Path | None = ConfigOption) -> None:
    """Start the broker (fetching its jars on first use) and wait until it answers."""
    started = time.perf_counter()
    try:
        settings = settings_or_exit(config)
        status = LocalKafka(settings).up()
    except KafkaLauncherError as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"kafka: {status.message} ({time.perf_counter() - started:.1f} s)")
    security = settings.kafka.security
    if security.enabled and not status.external:
        from streamgate.kafka.security import credentials_path

        typer.echo(f"kafka: {security.protocol} {security.mechanism}, ACLs on; passwords in "
                   f"{credentials_path(settings)} (0600); `streamgate topics apply` grants the ACLs")


@app.command()
def down(config: Path | None = ConfigOption) -> None:
    """Stop the broker cleanly; its data is kept for the next `up`."""
    typer.echo(f"kafka: {LocalKafka(settings_or_exit(config)).down().message}")


@app.command()
def status(config: Path | None = ConfigOption) -> None:
    """Say whether the broker runs and answers; exit 1 when it does not."""
    st = LocalKafka(settings_or_exit(config)).status()
    typer.echo(f"kafka: {st.message}" + (f" (data: {st.data_dir})" if st.data_dir else ""))
    if not st.running:
        raise typer.Exit(1)


@app.command()
def fetch() -> None:
    """Resolve the broker's jars from Maven Central into the local cache (done by `up` when needed)."""
    try:
        classpath = resolve_classpath()
    except KafkaLauncherError as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"kafka: {len(classpath.split(':'))} jars ready")


@app.command()
def credentials(
    principal: str = typer.Option(..., "--principal", help="A role of schemas/principals.yaml (service, "
                                  "streams, dispatcher, ...) or admin."),
    config: Path | None = ConfigOption,
) -> None:
    """Print the librdkafka client properties (JSON) that connect as PRINCIPAL, password included:
    hand them to the service or component that runs as it, never to a log or a repository."""
    from typing import get_args

    from streamgate.config import Role
    from streamgate.kafka.clients import base_config
    from streamgate.kafka.security import KafkaSecurityError

    settings = settings_or_exit(config)
    roles = get_args(Role)
    if principal not in roles:
        raise fail(f"unknown principal {principal!r}; one of {', '.join(roles)}", 2)
    try:
        props = base_config(settings, f"streamgate-{principal}", role=principal)  # type: ignore[arg-type]
    except KafkaSecurityError as exc:
        raise fail(str(exc)) from exc
    typer.echo(json.dumps(props, indent=2, sort_keys=True))
