"""`streamgate policy`: what a gateway policy change would do, before it goes live."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from apps.cli.common import ConfigOption, fail, settings_or_exit

if TYPE_CHECKING:
    from shared.policy.config import GatewayPolicy

app = typer.Typer(
    help="Gateway policy tools: backtest a candidate policy against recorded traffic.", no_args_is_help=True
)


@app.command()
def backtest(
    candidate: Path = typer.Argument(..., help="Candidate gateway policy YAML."),
    since: str = typer.Option("7d", help="Window start: 7d, 12h, 30m before now, or an ISO date/time."),
    team: str | None = typer.Option(None, help="Only this team's requests."),
    live: Path | None = typer.Option(None, help="The policy in force (default: config/gateway.yaml)."),
    published: bool = typer.Option(
        False,
        "--published",
        help="The policy in force is the one last published "
        "on the config topic (`streamgate config publish`); needs the broker.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON (for CI)."),
    fail_on: str | None = typer.Option(
        None, "--fail-on", help="Exit 1 when this holds, e.g. 'newly_rejected_share > 0.01'."
    ),
    sample: int = typer.Option(8, help="Changed requests to show (redacted text)."),
    config: Path | None = ConfigOption,
) -> None:
    """Replay the recorded requests of a window through CANDIDATE and the live policy; report the diff."""
    code = run_backtest(
        candidate,
        since=since,
        team=team,
        live=live,
        as_json=as_json,
        fail_on=fail_on,
        sample=sample,
        config=config,
        published=published,
    )
    if code:
        raise typer.Exit(code)


def run_backtest(
    candidate: Path,
    *,
    since: str = "7d",
    team: str | None = None,
    live: Path | None = None,
    as_json: bool = False,
    fail_on: str | None = None,
    sample: int = 8,
    config: Path | None = None,
    live_policy: GatewayPolicy | None = None,
    published: bool = False,
) -> int:
    """Print the backtest; 1 when `fail_on` holds, 0 otherwise (2 on bad input, raised as an exit).
    The live policy: the file `live`, else `live_policy`, else (with `published`) the one on the config
    topic, else config/gateway.yaml."""
    from rich.console import Console

    from apps.backtest.history import NoHistoryError
    from apps.backtest.run import backtest as run
    from apps.backtest.run import render, save_summary
    from apps.backtest.summary import FailOnError, fails
    from shared.policy.config import PolicyConfigError, load_policy

    settings = settings_or_exit(config)
    if published and live is None and live_policy is None:
        from shared.policy.holder import published_policy

        live_policy = published_policy(settings)
        if live_policy is None:
            typer.secho(
                "no policy published on the config topic: comparing with config/gateway.yaml",
                fg="yellow",
                err=True,
            )
    try:
        policies = load_policy(candidate), load_policy(live) if live else live_policy
        summary = run(settings, policies[0], live=policies[1], since=since, team=team, sample=sample)
        failed = fails(fail_on, summary) if fail_on else False
        save_summary(settings, summary)  # for `streamgate report`
    except (PolicyConfigError, FailOnError, ValueError, NoHistoryError) as exc:
        raise fail(str(exc), 2) from exc
    if as_json:
        typer.echo(json.dumps({**summary, "fail_on": fail_on, "failed": failed}, indent=2))
    else:
        render(summary, Console())
        if fail_on:
            typer.echo(f"--fail-on {fail_on!r}: {'FAILED' if failed else 'passed'}")
    return 1 if failed else 0
