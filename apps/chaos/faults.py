"""The faults a chaos run injects, planned from a seed so a failing run can be replayed exactly.

kill -9 (no chance to flush, commit or abort anything) and an immediate restart of every kind of
component, one broker restart, malformed bytes on the topics each consuming stage reads, and provider
outages through the simulator's admin endpoint.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass

import httpx
from confluent_kafka import Producer

from apps.chaos import KILLABLE
from apps.chaos.invariants import Coord
from apps.demo.processes import Components
from apps.demo.run import CORRUPT_RECORDS
from gateway_consumer.simulator import SimulatorProcess
from schemas.topics import Topic, physical_name
from streamgate.config import Settings
from streamgate.kafka.clients import producer_config
from streamgate.kafka.launcher import LocalKafka

#: One topic per consuming stage: the request path, the dispatcher and the aggregator (+ the sink).
MALFORMED_TOPICS = (Topic.REQUESTS, Topic.ROUTED, Topic.TELEMETRY)
#: Models taken down by an outage: one with a single target (requests fail), one behind aliases.
OUTAGE_MODELS = ("gpt-4o-mini", "claude-3-5-haiku-latest")
OUTAGE_S = 4.0


@dataclass(frozen=True, order=True)
class Fault:
    at_s: float
    kind: str  # kill | broker | leader-kill | rolling-restart | malformed | outage | recover
    target: str = ""

    def __str__(self) -> str:
        return f"{self.at_s:6.1f} s  {self.kind} {self.target}".rstrip()


def plan(duration_s: float, seed: int, *, kills: int = 1, kinds: tuple[str, ...] = KILLABLE,
         broker: bool = True, outages: int = 2, malformed: int = 3, brokers: int = 1,
         malformed_into: tuple[Topic, ...] = MALFORMED_TOPICS) -> list[Fault]:
    """Random times within the middle of the run, so every fault meets traffic before and after it.
    On a cluster (`brokers` > 1) the broker restart becomes a kill -9 of the busiest leader early on
    and a rolling restart of every broker later (both run by apps/chaos/brokers.py). `malformed_into`:
    topics a running stage consumes (nothing reads `requests.routed` in the fused deployment)."""
    rng = random.Random(seed)

    def at() -> float:
        return round(rng.uniform(0.1, 0.8) * duration_s, 1)

    faults = [Fault(at(), "kill", name) for name in KILLABLE for _ in range(kills)]
    faults = [f for f in faults if f.target in kinds]  # drawn for all kinds: a seed keeps its times
    faults += [Fault(round(rng.uniform(0.35, 0.55) * duration_s, 1), "broker")] if broker else []
    faults += [Fault(at(), "malformed", malformed_into[i % len(malformed_into)]) for i in range(malformed)]
    for i in range(outages):
        start, model = at(), OUTAGE_MODELS[i % len(OUTAGE_MODELS)]
        faults += [Fault(start, "outage", model), Fault(start + OUTAGE_S, "recover", model)]
    if broker and brokers > 1:  # drawn last, so a seed's other faults are those of a single-broker run
        faults = [f for f in faults if f.kind != "broker"]
        faults += [Fault(round(rng.uniform(0.1, 0.2) * duration_s, 1), "leader-kill"),
                   Fault(round(rng.uniform(0.4, 0.5) * duration_s, 1), "rolling-restart")]
    return sorted(faults)


def kill9(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


def kill_and_restart(components: Components, simulator: SimulatorProcess, name: str) -> None:
    """kill -9 the component and start it again at once (a supervisor's restart)."""
    kill9(components.procs[name])
    if name == "simulator":
        simulator.start(timeout_s=90)  # a loaded machine (a cluster's three JVMs) starts it slowly
        assert simulator.proc is not None
        components.procs[name] = simulator.proc
    else:
        components.start(name, *components.args[name])


def restart_broker(settings: Settings) -> float:
    """Stop the local broker and start it again; returns the seconds it was away."""
    t0 = time.monotonic()
    broker = LocalKafka(settings)
    broker.down()
    broker.up()
    return time.monotonic() - t0


def inject_malformed(settings: Settings, topic: Topic) -> list[Coord]:
    """Bytes no producer should send, written straight to `topic`; returns where each one landed."""
    name = physical_name(topic, settings.kafka.topic_prefix)
    landed: list[Coord] = []

    def delivered(err: object, msg: object) -> None:
        if err is None:
            landed.append((name, msg.partition(), msg.offset()))  # type: ignore[attr-defined]

    producer = Producer(producer_config(settings, client_id="chaos-malformed", role="admin"))
    for n, bad in enumerate(CORRUPT_RECORDS):
        producer.produce(name, value=bad, key=f"malformed-{n}".encode(), on_delivery=delivered)
    if producer.flush(60):
        raise RuntimeError(f"malformed records to {name} were not delivered in 60 s")
    return landed


def set_outage(simulator: SimulatorProcess, model: str, down: bool) -> str:
    """Every call to `model` fails with a server error until recovered; a dead simulator is reported."""
    try:
        if down:
            simulator.set_profile(model, error_rate=1.0)
        else:
            simulator.reset_profile(model)
    except httpx.HTTPError as exc:
        return f"simulator unreachable ({type(exc).__name__})"
    return ""
