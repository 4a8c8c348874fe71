"""`streamgate config`: publish versioned configuration to the compacted config topic; the reference."""

from __future__ import annotations

from pathlib import Path

import typer

from apps.cli.common import ConfigOption, fail, settings_or_exit
from streamgate.config import Settings

app = typer.Typer(help="Publish gateway configuration (running processors pick it up without a restart); "
                  "generate the configuration reference.",
                  no_args_is_help=True)


@app.command()
def publish(
    policy: Path = typer.Argument(Path("config/gateway.yaml"), help="Gateway policy YAML."),
    backtest: bool = typer.Option(False, "--backtest", help="First replay the recorded traffic through it "
                                  "(`streamgate policy backtest`), show the diff and ask before publishing."),
    since: str = typer.Option("7d", help="With --backtest: the window replayed."),
    yes: bool = typer.Option(False, "--yes", "-y", help="With --backtest: publish without asking."),
    config: Path | None = ConfigOption,
) -> None:
    """Validate a gateway policy and publish it (bump its `version` first)."""
    from shared.policy.config import PolicyConfigError
    from shared.policy.publish import publish_policy

    settings = settings_or_exit(config)
    if backtest and not _backtest_first(settings, policy, since, config, yes=yes):
        typer.echo("config: not published")
        raise typer.Exit(1)
    try:
        published = publish_policy(settings, policy)
    except (PolicyConfigError, OSError) as exc:
        raise fail(str(exc), 2) from exc
    typer.echo(f"config: gateway policy {published.version} published")


def _backtest_first(settings: Settings, policy: Path, since: str, config: Path | None, *, yes: bool) -> bool:
    """Backtest `policy` against the policy in force (the last one published on the config topic, else
    config/gateway.yaml as the processors loaded it), print the diff, and ask. True: go ahead."""
    from apps.cli.policy import run_backtest
    from shared.policy.config import GATEWAY_FILE
    from shared.policy.holder import published_policy

    live = None
    try:
        live = published_policy(settings)
    except Exception as exc:  # no broker: say so, and compare with the file the processors start from
        typer.secho(f"config: cannot read the config topic ({exc})", fg="yellow", err=True)
    if live is None:
        typer.echo(f"config: no policy published yet; the live policy is {GATEWAY_FILE} as loaded at start")
        if policy.resolve() == GATEWAY_FILE.resolve():
            typer.secho("config: the candidate is that same file: the backtest compares it with itself",
                        fg="yellow", err=True)
    try:
        run_backtest(policy, since=since, live_policy=live, config=config)
    except typer.Exit as exc:  # no recorded traffic yet, or a bad window: nothing to show, still ask
        typer.secho(f"config: backtest not available (exit {exc.exit_code})", fg="yellow", err=True)
    return yes or typer.confirm("Publish this policy?", default=False)


@app.command()
def reference(
    output: Path | None = typer.Option(None, help="Write here instead of docs/configuration.md; '-' prints."),
    check: bool = typer.Option(False, help="Exit 1 if docs/configuration.md is not what the models say."),
) -> None:
    """Generate the configuration reference from the settings models."""
    from streamgate.config_reference import DOC, render

    text = render()
    if check:
        if not DOC.exists() or DOC.read_text() != text:
            raise fail(f"{DOC} is out of date: run `streamgate config reference`", 1)
        typer.echo(f"config: {DOC} is current")
    elif output is not None and str(output) == "-":
        typer.echo(text, nl=False)
    else:
        target = output or DOC
        target.write_text(text)
        typer.echo(f"config: reference written to {target}")
