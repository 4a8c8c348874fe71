"""`streamgate chaos`: inject faults while the workload runs, then check that nothing was lost."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType

import typer

from apps.chaos import KILLABLE
from apps.cli.common import ConfigOption, fail, settings_or_exit


def run(
    requests: int = typer.Option(3000, "--requests", "-n", min=1, help="How many requests to send."),
    duration: float = typer.Option(60.0, "--duration", min=5, help="Seconds over which they are sent "
                                   "(and the faults fire)."),
    seed: int | None = typer.Option(None, "--seed", help="Replays a run's faults and workload exactly."),
    kills: int = typer.Option(1, "--kills", min=0, help="kill -9 of each kind of component, per run."),
    kill: str = typer.Option(",".join(KILLABLE), "--kill", help="Which kinds of component to kill -9, "
                             "comma-separated."),
    broker_restart: bool = typer.Option(True, "--broker-restart/--no-broker-restart",
                                        help="Restart the local broker once during the run."),
    brokers: int | None = typer.Option(None, "--brokers", min=1, max=9, help="Run on a local cluster of "
                                       "this many brokers (3: kill -9 of the busiest leader, its restart "
                                       "and a rolling restart of all, instead of the single broker's "
                                       "restart). Default: kafka.local.brokers."),
    settle: float = typer.Option(180.0, "--settle", min=1, help="Seconds to wait for every answer and for "
                                 "the sink and aggregator to catch up before checking."),
    config: Path | None = ConfigOption,
) -> None:
    """kill -9 each kind of component, restart the broker (on a cluster: kill -9 the busiest leader, restart
    it, then restart every broker in turn), inject malformed events and provider outages while requests
    flow; then print every invariant with PASS/FAIL (exit 1 on any FAIL), the longest stall and how long
    the cluster took to be fully replicated again."""
    from apps.chaos.run import run_chaos

    kinds = tuple(k.strip() for k in kill.split(",") if k.strip())
    if unknown := set(kinds) - set(KILLABLE):
        raise fail(f"unknown component(s) for --kill: {', '.join(sorted(unknown))}; "
                   f"choose from {', '.join(KILLABLE)}", 2)
    settings = settings_or_exit(config)
    signal.signal(signal.SIGTERM, _interrupt)  # stop every child on SIGTERM as on Ctrl-C
    try:
        report = run_chaos(settings, requests=requests, duration_s=duration, seed=seed, kills=kills,
                           kinds=kinds, broker_restart=broker_restart, settle_s=settle,
                           brokers=brokers)
    except KeyboardInterrupt:
        typer.secho("interrupted; every process the run started was stopped", fg="yellow", err=True)
        raise typer.Exit(130) from None
    if not report.ok:
        raise typer.Exit(1)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
