"""The `streamgate` command: one entry point, one sub-command group per component."""

from __future__ import annotations

import sys

import typer
from confluent_kafka import KafkaError, KafkaException

from apps.cli import (
    aggregate,
    bench,
    catalog,
    chaos,
    config_cmd,
    demo,
    dispatch,
    features,
    gateway,
    kafka,
    keys,
    lakehouse,
    policy,
    rag,
    registry,
    report,
    s3,
    serve,
    streams,
    topics,
)

app = typer.Typer(
    name="streamgate",
    help="A streaming AI-gateway data plane on Kafka: validate, guard, route, dispatch, price, land.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(kafka.app, name="kafka")
app.add_typer(topics.app, name="topics")
app.add_typer(keys.app, name="keys")
app.add_typer(registry.app, name="schema-registry")
app.add_typer(catalog.app, name="catalog")
app.add_typer(streams.app, name="streams")
app.add_typer(config_cmd.app, name="config")
app.add_typer(policy.app, name="policy")
app.add_typer(dispatch.app, name="dispatch")
app.add_typer(gateway.app, name="gateway")
app.add_typer(aggregate.app, name="aggregate")
app.add_typer(rag.app, name="rag")
app.command("usage")(aggregate.usage)
app.add_typer(lakehouse.app, name="lakehouse")
app.add_typer(s3.app, name="s3")
app.command("query")(lakehouse.query)
app.add_typer(features.app, name="features")
app.command("simulator")(dispatch.simulator)
app.command("demo")(demo.run)
app.command("chaos")(chaos.run)
app.command("report")(report.run)
app.command("bench", help=bench.HELP, context_settings=bench.CONTEXT)(bench.run)
app.command("serve")(serve.serve)

#: librdkafka's errors for "no broker answered": a command that needs the cluster says so in one line.
_UNREACHABLE = frozenset({KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT,
                          KafkaError._RESOLVE})


def main() -> None:
    """The `streamgate` console script: the commands, with a broker that does not answer reported as a
    clear message and exit code 3 instead of a traceback."""
    try:
        app()
    except KafkaException as exc:
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        if error is None or error.code() not in _UNREACHABLE:
            raise
        typer.secho(f"no Kafka broker answered ({error.str()}): start the local one with `streamgate kafka "
                    "up`, or point kafka.bootstrap_servers in the config at a running cluster", fg="red",
                    err=True)
        sys.exit(3)


if __name__ == "__main__":  # pragma: no cover
    main()
