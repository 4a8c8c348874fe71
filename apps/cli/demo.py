"""`streamgate demo`: start what is needed and push a realistic workload through the system."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType

import typer

from streamgate.config import ConfigError, load_settings


def run(
    requests: int = typer.Option(5000, "--requests", "-n", min=1, help="How many requests to send."),
    duration: float = typer.Option(60.0, "--duration", min=0, help="Seconds to send them over, with a "
                                   "50x burst and a provider that degrades and recovers (0: at once)."),
    config: Path | None = typer.Option(None, "--config", help="streamgate YAML config file."),
    stall: float = typer.Option(120.0, "--stall", min=1, help="Stop waiting for outcomes after this many "
                                "seconds in which none arrived (the wait lasts while they keep coming)."),
) -> None:
    """Run the end-to-end demo on embedded defaults (starts a local Kafka broker if none is configured)."""
    import logging

    from apps.demo.run import DemoError, run_demo

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from exc
    # SIGTERM (a timeout, a supervisor) must stop the child processes like Ctrl-C does
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        run_demo(settings, requests=requests, duration_s=duration or None, stall_s=stall)
    except KeyboardInterrupt:
        typer.secho("interrupted; every process the demo started was stopped", fg="yellow", err=True)
        raise typer.Exit(130) from None
    except DemoError as exc:
        typer.secho(f"demo failed: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    except Exception as exc:  # a message for people; the traceback goes to the demo's log for developers
        logging.getLogger("streamgate.demo").exception("demo failed")
        log = settings.state_dir / "logs" / "demo.log"
        typer.secho(f"demo failed: {type(exc).__name__}: {exc} (details in {log}); every process it "
                    "started was stopped", fg="red", err=True)
        raise typer.Exit(1) from None


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
