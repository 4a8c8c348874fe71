"""Shared CLI plumbing: the --config option and turning known errors into clean exits."""

from __future__ import annotations

from pathlib import Path

import typer

from streamgate.config import ConfigError, Settings, load_settings

ConfigOption = typer.Option(None, "--config", "-c",
                            help="streamgate YAML config (default: config/streamgate.yaml).")
MetricsPortOption = typer.Option(None, "--metrics-port",
                                 help="Serve /metrics and /healthz here (default: metrics.ports in the "
                                 "config; 0: off). For a second instance on one host.")


def settings_or_exit(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from exc


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(message, fg="red", err=True)
    return typer.Exit(code)
