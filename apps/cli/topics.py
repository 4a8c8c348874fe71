"""`streamgate topics`: make the cluster's topics match schemas/topics.yaml."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from apps.cli.common import ConfigOption, fail, settings_or_exit
from schemas.principals import PrincipalSpecError
from schemas.topics import TopicSpecError, load_topic_specs
from streamgate.kafka.topics import apply_spec, deployments, describe_topics, drop_prefix, topics_under

app = typer.Typer(help="Topics as code: apply and compare the declarative topic spec.", no_args_is_help=True)


@app.command()
def apply(
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would change; change nothing."),
    config: Path | None = ConfigOption,
) -> None:
    """Create missing topics, raise partitions, set retention and cleanup; create the SCRAM users and ACLs
    of schemas/principals.yaml; report drift it will not fix."""
    settings = settings_or_exit(config)
    try:
        report, acls = apply_spec(settings, dry_run=dry_run)
    except (TopicSpecError, PrincipalSpecError) as exc:
        raise fail(str(exc), 2) from exc
    console = Console()
    table = Table(title=f"topics apply{' (dry run)' if dry_run else ''}")
    table.add_column("topic")
    table.add_column("action")
    for name in report.created:
        table.add_row(name, "create")
    for name, what in report.updated:
        table.add_row(name, f"update: {what}")
    for d in report.drift:
        table.add_row(d.topic, f"[yellow]drift: {d.what} ({d.reason})[/]")
    for name in report.unchanged:
        table.add_row(name, "unchanged")
    console.print(table)
    console.print(report.summary())
    if settings.kafka.security.enabled:
        for rule in acls.created:
            console.print(f"acl {'(would) ' if dry_run else ''}allow User:{rule.principal} {rule.operation} "
                          f"{rule.resource_type} {rule.pattern} {rule.name}")
        for user in acls.users_created:
            console.print(f"scram user {'(would) ' if dry_run else ''}created: {user}")
        for line in acls.drift:
            console.print(f"[yellow]acl drift (not in schemas/principals.yaml): {line}[/]")
        console.print(acls.summary())


@app.command("list")
def list_topics(config: Path | None = ConfigOption) -> None:
    """The spec next to what the cluster has."""
    settings = settings_or_exit(config)
    table = Table(title="topics")
    for col in ("topic", "schema", "partitions (spec/actual)", "cleanup", "retention ms"):
        table.add_column(col)
    for spec, actual in describe_topics(settings, load_topic_specs(),
                                        prefix=settings.kafka.topic_prefix):
        table.add_row(settings.kafka.topic_prefix + spec.name, spec.value_schema,
                      f"{spec.partitions}/{actual if actual is not None else 'missing'}",
                      spec.cleanup_policy, str(spec.retention_ms))
    Console().print(table)


@app.command()
def drop(
    prefix: str = typer.Argument("", help="The deployment's topic prefix (e.g. chaos-7f5fd3f2-dcec.); "
                                 "without one, the deployments on the cluster are listed."),
    yes: bool = typer.Option(False, "--yes", help="Drop without asking."),
    config: Path | None = ConfigOption,
) -> None:
    """Delete a prefixed deployment's topics and ACLs: what a chaos run, a killed benchmark or a test left
    on a long-lived broker (each idle partition and ACL costs the broker work on every request)."""
    settings = settings_or_exit(config)
    found = deployments(settings)
    if not prefix:
        for name, count in sorted(found.items()):
            typer.echo(f"{name or '(no prefix)'}\t{count} topics")
        raise fail("name the prefix to drop; the unprefixed deployment is never dropped", 2)
    if prefix not in found:
        raise fail(f"no deployment with prefix {prefix!r} on the cluster "
                   f"(`streamgate topics drop` lists them)", 1)
    target = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"topic_prefix": prefix})})
    if not yes:  # what will go, not only the spec's topics the listing counts
        typer.confirm(f"delete the {len(topics_under(target))} topics under {prefix!r} and their ACLs?",
                      abort=True)
    typer.echo(f"dropped {drop_prefix(target)} topics under {prefix!r} and their ACLs")
