"""The whole pipeline on one machine: the broker (unless one is configured or running), the topics, the
provider simulator and every stage as its own process. The demo and `streamgate serve --all` start it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from rich.console import Console

from apps.demo.processes import Components
from gateway_consumer.simulator import SimulatorProcess
from streamgate.config import Settings
from streamgate.kafka.launcher import LocalKafka
from streamgate.kafka.topics import apply_spec

#: (process name, command) of a stage of the flow, each a consumer-group member of its own
Stage = tuple[str, tuple[str, ...]]
FUSED: tuple[Stage, ...] = (("gateway-worker", ("gateway", "worker")),)
STAGED: tuple[Stage, ...] = (("streams-worker", ("streams", "worker")),
                             ("dispatcher", ("dispatch", "worker")))
DOWNSTREAM: tuple[Stage, ...] = (("aggregator", ("aggregate", "worker")),
                                 ("lakehouse-sink", ("lakehouse", "sink")))


def request_stages(settings: Settings) -> tuple[Stage, ...]:
    """The processes that decide and answer requests, as `streams.deployment` says."""
    return FUSED if settings.streams.deployment == "fused" else STAGED


def stages(settings: Settings) -> tuple[Stage, ...]:
    """Every stage's process, in the order they start."""
    return (*request_stages(settings), *DOWNSTREAM)


def start_infrastructure(settings: Settings, console: Console) -> bool:
    """The broker (unless one runs) and the topics; returns whether this started the broker."""
    started = time.perf_counter()
    broker = LocalKafka(settings)
    was_running = settings.kafka.external or broker.status().running
    status = broker.up()
    console.print(f"[bold]kafka[/] {status.message} ({time.perf_counter() - started:.1f} s)")
    report, acls = apply_spec(settings)
    console.print(f"[bold]topics[/] {report.summary()} · {acls.summary()}")
    return not was_running


@contextlib.contextmanager
def stop_broker_on_interrupt(settings: Settings, started: bool) -> Iterator[None]:
    """Ctrl-C stops every process the run started, the broker too when the run started it (a run that
    finishes leaves it up for `streamgate usage` and the next run)."""
    try:
        yield
    except KeyboardInterrupt:
        if started:
            LocalKafka(settings).down()
        raise


def start_simulator(settings: Settings, components: Components) -> SimulatorProcess:
    """The provider simulator, owned by `components` from the moment it exists (even if start is cut)."""
    log = components.logs / "simulator.log"
    simulator = SimulatorProcess(settings.simulator.port, log, components.config)
    try:
        simulator.start()
    finally:
        if simulator.proc is not None:
            components.procs["simulator"] = simulator.proc
    return simulator


def start_stages(components: Components, settings: Settings) -> None:
    for name, command in stages(settings):
        components.start(name, *command)
