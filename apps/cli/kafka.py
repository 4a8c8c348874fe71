"""`streamgate kafka`: the local KRaft broker, or a local cluster of them (`--brokers 3`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from apps.cli.common import ConfigOption, fail, settings_or_exit
from streamgate.config import Settings
from streamgate.kafka.launcher import KafkaLauncherError, LocalKafka, resolve_classpath

app = typer.Typer(help="Run the local Apache Kafka broker (KRaft) or cluster, or check the configured one.",
                  no_args_is_help=True)

BrokersOption = typer.Option(None, "--brokers", min=1, max=9, help="How many local brokers (default: "
                             "kafka.local.brokers, 1). Clients find them all only if the config says the "
                             "same: set kafka.local.brokers too.")


def _settings(config: Path | None, brokers: int | None) -> Settings:
    settings = settings_or_exit(config)
    if brokers is None or brokers == settings.kafka.local.brokers:
        return settings
    local = settings.kafka.local.model_copy(update={"brokers": brokers})
    return settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"local": local})})


@app.command()
def up(brokers: int | None = BrokersOption, config: Path | None = ConfigOption) -> None:
    """Start the broker(s) (fetching the jars on first use) and wait until every one answers."""
    started = time.perf_counter()
    try:
        settings = _settings(config, brokers)
        status = LocalKafka(settings).up()
    except KafkaLauncherError as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"kafka: {status.message} ({time.perf_counter() - started:.1f} s)")
    configured = settings_or_exit(config).kafka.local.brokers
    if brokers is not None and brokers != configured and not status.external:
        typer.secho(f"kafka: the config says kafka.local.brokers: {configured}; set it to "
                    f"{brokers} so every component bootstraps from all brokers and "
                    "`topics apply` and `kafka status/down` see the cluster", fg="yellow", err=True)
    security = settings.kafka.security
    if security.enabled and not status.external:
        from streamgate.kafka.security import credentials_path

        typer.echo(f"kafka: {security.protocol} {security.mechanism}, ACLs on; passwords in "
                   f"{credentials_path(settings)} (0600); `streamgate topics apply` grants the ACLs")


@app.command()
def down(brokers: int | None = BrokersOption, config: Path | None = ConfigOption) -> None:
    """Stop the broker(s) cleanly; the data is kept for the next `up`."""
    typer.echo(f"kafka: {LocalKafka(_settings(config, brokers)).down().message}")


@app.command()
def status(brokers: int | None = BrokersOption, config: Path | None = ConfigOption) -> None:
    """Say whether the broker(s) run and answer; on a cluster also each broker, the active controller
    and the under-replicated partitions. Exit 1 when not every broker answers."""
    settings = _settings(config, brokers)
    broker = LocalKafka(settings)
    st = broker.status()
    typer.echo(f"kafka: {st.message}" + (f" (data: {st.data_dir})" if st.data_dir else ""))
    if broker.cluster and not st.external:
        for node in st.nodes:
            state = "alive" if node.live else ("process up, not in the cluster" if node.pid else "down")
            typer.echo(f"  broker {node.node_id}  127.0.0.1:{node.port}  pid {node.pid or '-'}  {state}")
        controller = broker.active_controller()
        typer.echo(f"  active controller: {controller if controller is not None else 'unknown'}")
    if st.running or (broker.cluster and any(n.live for n in st.nodes)):
        _replication(settings)
    if not st.running:
        raise typer.Exit(1)


def _replication(settings: Settings) -> None:
    from streamgate.kafka.health import cluster_health

    try:
        health = cluster_health(settings)
    except Exception as exc:  # a cluster that does not answer metadata requests is already reported
        typer.echo(f"  partitions: not readable ({exc})")
        return
    under, offline = health.under_replicated, health.offline
    typer.echo(f"  partitions: {len(health.partitions)}, under-replicated {len(under)}, "
               f"offline {len(offline)}")
    for p in (offline + under)[:20]:
        typer.echo(f"    {p.topic}[{p.partition}] leader {p.leader} replicas {list(p.replicas)} "
                   f"isr {list(p.isr)}")


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
    from streamgate.kafka.security import KafkaSecurityError, client_security

    settings = settings_or_exit(config)
    roles = get_args(Role)
    if principal not in roles:
        raise fail(f"unknown principal {principal!r}; one of {', '.join(roles)}", 2)
    try:
        props = {"bootstrap.servers": settings.kafka.bootstrap(),
                 **client_security(settings, principal)}  # type: ignore[arg-type]
    except KafkaSecurityError as exc:
        raise fail(str(exc)) from exc
    typer.echo(json.dumps(props, indent=2, sort_keys=True))
