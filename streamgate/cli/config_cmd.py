"""`streamgate config`: publish versioned configuration to the compacted config topic."""

from __future__ import annotations

from pathlib import Path

import typer

from streamgate.cli.common import ConfigOption, fail, settings_or_exit

app = typer.Typer(help="Publish gateway configuration; running processors pick it up without a restart.",
                  no_args_is_help=True)


@app.command()
def publish(
    policy: Path = typer.Argument(Path("config/gateway.yaml"), help="Gateway policy YAML."),
    config: Path | None = ConfigOption,
) -> None:
    """Validate a gateway policy and publish it (bump its `version` first)."""
    from streams.policy.config import PolicyConfigError
    from streams.policy.publish import publish_policy

    try:
        published = publish_policy(settings_or_exit(config), policy)
    except (PolicyConfigError, OSError) as exc:
        raise fail(str(exc), 2) from exc
    typer.echo(f"config: gateway policy {published.version} published")
