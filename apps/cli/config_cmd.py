"""`streamgate config`: publish versioned configuration to the compacted config topic; the reference."""

from __future__ import annotations

from pathlib import Path

import typer

from apps.cli.common import ConfigOption, fail, settings_or_exit

app = typer.Typer(help="Publish gateway configuration (running processors pick it up without a restart); "
                  "generate the configuration reference.",
                  no_args_is_help=True)


@app.command()
def publish(
    policy: Path = typer.Argument(Path("config/gateway.yaml"), help="Gateway policy YAML."),
    config: Path | None = ConfigOption,
) -> None:
    """Validate a gateway policy and publish it (bump its `version` first)."""
    from shared.policy.config import PolicyConfigError
    from shared.policy.publish import publish_policy

    try:
        published = publish_policy(settings_or_exit(config), policy)
    except (PolicyConfigError, OSError) as exc:
        raise fail(str(exc), 2) from exc
    typer.echo(f"config: gateway policy {published.version} published")


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
