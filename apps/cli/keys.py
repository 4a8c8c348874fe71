"""`streamgate keys`: issue, list, revoke and rotate API keys (shared/identity/).

`create` and `rotate` print the new key once, on stdout, and nowhere else: it is not stored, logged or
recoverable. Everything else prints public key ids only.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from apps.cli.common import ConfigOption, fail, settings_or_exit
from shared.identity.admin import KeyAdmin, UnknownKeyError
from shared.identity.keys import KeyRecord, parse_duration_ms
from shared.policy.config import load_policy

app = typer.Typer(help="API keys: create (shown once), list, revoke, rotate with a grace period.",
                  no_args_is_help=True)
ActorOption = typer.Option(None, "--actor", help="Who makes the change, for the audit event "
                                                  "(default: the OS user).")


def _when(ms: int | None) -> str:
    return "-" if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _show_new(record: KeyRecord, raw: str, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"id": record.id, "key": raw, "team": record.team, "project": record.project}))
        return
    typer.echo(f"id:      {record.id}\nteam:    {record.team}/{record.project}\nkey:     {raw}")
    typer.secho("This is the only time the key is shown: store it now.", fg="yellow", err=True)


@app.command()
def create(
    team: str = typer.Option(..., "--team", help="The team every request under this key belongs to."),
    project: str = typer.Option(..., "--project", help="The team's project."),
    models: str = typer.Option("*", "--models", help="Comma-separated globs of models/aliases it may use."),
    max_budget_usd: float | None = typer.Option(None, "--max-budget-usd", min=0,
                                                help="Spend cap per calendar month, USD."),
    rpm: int | None = typer.Option(None, "--rpm", min=1, help="Requests per minute."),
    expires: str | None = typer.Option(None, "--expires", help="Lifetime, e.g. 30d, 12h."),
    as_json: bool = typer.Option(False, "--json", help="Print {id, key, team, project} as JSON."),
    actor: str | None = ActorOption,
    config: Path | None = ConfigOption,
) -> None:
    """Issue a key bound to a team and project; prints the key ONCE."""
    settings = settings_or_exit(config)
    policy = load_policy()
    known = policy.teams.get(team)
    if known is None:
        raise fail(f"team {team!r} is not in the gateway policy", 2)
    if project not in known.projects:
        raise fail(f"project {project!r} is not a project of {team} ({', '.join(known.projects)})", 2)
    try:
        expires_ms = parse_duration_ms(expires) if expires else None
    except ValueError as exc:
        raise fail(str(exc), 2) from exc
    globs = [m.strip() for m in models.split(",") if m.strip()] or ["*"]
    record, raw = KeyAdmin(settings, actor=actor).create(
        team, project, models=globs, max_budget_usd=max_budget_usd, rpm=rpm, expires_in_ms=expires_ms)
    _show_new(record, raw, as_json)


@app.command("list")
def list_keys(
    team: str | None = typer.Option(None, "--team", help="Only this team's keys."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
    config: Path | None = ConfigOption,
) -> None:
    """Every key's id, owner, limits and status (never the key)."""
    records = [r for r in KeyAdmin(settings_or_exit(config)).list_keys() if team in (None, r.team)]
    if as_json:
        for r in records:
            event = r.to_event()
            del event["hmac"]
            typer.echo(json.dumps(event))
        return
    table = Table(title=f"API keys ({len(records)})")
    for column in ("id", "team/project", "status", "models", "budget $/month", "rpm", "expires",
                   "grace until", "rotated from", "created"):
        table.add_column(column)
    for r in records:
        table.add_row(r.id, f"{r.team}/{r.project}", r.status, ",".join(r.models),
                      "-" if r.max_budget_usd is None else f"{r.max_budget_usd:g}",
                      "-" if r.rpm is None else str(r.rpm), _when(r.expires_at), _when(r.grace_until),
                      r.rotated_from or "-", f"{_when(r.created_at)} by {r.created_by}")
    Console().print(table)


@app.command()
def revoke(
    key_id: str = typer.Argument(..., help="The key's public id (key_...)."),
    actor: str | None = ActorOption,
    config: Path | None = ConfigOption,
) -> None:
    """Revoke a key now: every worker and front door refuses it within seconds."""
    try:
        record = KeyAdmin(settings_or_exit(config), actor=actor).revoke(key_id)
    except UnknownKeyError as exc:
        raise fail(str(exc), 2) from exc
    typer.echo(f"revoked {record.id} ({record.team}/{record.project})")


@app.command()
def rotate(
    key_id: str = typer.Argument(..., help="The key's public id (key_...)."),
    grace: str = typer.Option("1h", "--grace", help="How long the old key stays valid, e.g. 1h, 0s."),
    as_json: bool = typer.Option(False, "--json", help="Print {id, key, team, project} as JSON."),
    actor: str | None = ActorOption,
    config: Path | None = ConfigOption,
) -> None:
    """Issue a replacement with the same team, project and limits; the old key works until the grace
    period ends. Prints the new key ONCE."""
    try:
        grace_ms = parse_duration_ms(grace)
        old, new, raw = KeyAdmin(settings_or_exit(config), actor=actor).rotate(key_id, grace_ms)
    except (UnknownKeyError, ValueError) as exc:
        raise fail(str(exc), 2) from exc
    typer.secho(f"{old.id} stays valid until {_when(old.grace_until)}", err=True)
    _show_new(new, raw, as_json)


@app.command()
def disable(
    key_id: str = typer.Argument(..., help="The key's public id (key_...)."),
    enable: bool = typer.Option(False, "--enable", help="Re-activate a disabled key instead."),
    actor: str | None = ActorOption,
    config: Path | None = ConfigOption,
) -> None:
    """Disable a key (refused as key_disabled, kept for re-enabling); `--enable` undoes it."""
    try:
        record = KeyAdmin(settings_or_exit(config), actor=actor).set_status(
            key_id, "active" if enable else "disabled")
    except (UnknownKeyError, ValueError) as exc:
        raise fail(str(exc), 2) from exc
    typer.echo(f"{record.id} is {record.status}")
