"""`streamgate chaos`: the demo's workload through every component while faults are injected, then proof
that nothing was lost, duplicated or mispriced.

A run gets its own topic prefix and lakehouse root, so its topics and tables hold exactly this run and
the invariants compare whole topics with whole tables. Requests are sent at an even pace over the run's
duration while the planned faults fire; then the run waits until every request has its final response
and the invariants hold (the sink and aggregator catch up after their restarts), up to a settle timeout,
stops every component and checks once more on the final state.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from apps.chaos import KILLABLE
from apps.chaos import faults as fx
from apps.chaos.brokers import BrokerFaults
from apps.chaos.evidence import Evidence, answer_times, collect, longest_stall
from apps.chaos.invariants import (
    Coord,
    Verdict,
    bronze_exactly_once,
    cost_totals_agree,
    dead_letters_expected,
    one_final_response,
)
from apps.demo.observe import OutcomeWatcher
from apps.demo.processes import Components
from apps.demo.run import DUPLICATE_EVERY
from apps.stack import stages, start_infrastructure, start_simulator, start_stages, stop_broker_on_interrupt
from gateway_consumer.simulator import SimulatorProcess
from schemas.topics import Topic
from shared.traffic import workload
from streamgate.client import RequestProducer
from streamgate.config import Settings


@dataclass
class ChaosReport:
    run_id: str
    seed: int
    sent: int = 0
    events: list[str] = field(default_factory=list)
    injected: list[Coord] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    #: restarts the harness did not cause: components that exited on their own (e.g. broker away)
    crashes: dict[str, int] = field(default_factory=dict)
    #: (seconds, seconds into the run) of the longest interval in which no answer was produced
    stall: tuple[float, float] = (0.0, 0.0)
    #: on a cluster: (broker fault, seconds from the broker's restart until nothing was under-replicated)
    replicated: list[tuple[str, float]] = field(default_factory=list)
    #: broker faults that could not be carried out (the run fails on them)
    broker_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.verdicts) and all(v.ok for v in self.verdicts) and not self.broker_errors


def chaos_settings(settings: Settings, run_id: str, brokers: int | None = None) -> Settings:
    """Own topics (prefix) and Delta tables (root) for the run; small sink batches: more commits to die in.
    `brokers`: run on a local cluster of that many brokers instead of the configured size."""
    prefix = f"{settings.kafka.topic_prefix}chaos-{run_id}."
    local = settings.kafka.local.model_copy(update={"brokers": brokers or settings.kafka.local.brokers})
    kafka = settings.kafka.model_copy(update={"topic_prefix": prefix, "local": local})
    lakehouse = settings.lakehouse.model_copy(update={
        "root": str(settings.state_dir / "chaos" / run_id / "lakehouse"), "flush_s": 1.0, "batch_rows": 1000})
    return settings.model_copy(update={"kafka": kafka, "lakehouse": lakehouse})


def check(evidence: Evidence, injected: set[Coord]) -> list[Verdict]:
    return [one_final_response(evidence.request_ids, evidence.answers),
            bronze_exactly_once(evidence.in_topics, evidence.in_tables),
            cost_totals_agree(evidence.offline, evidence.aggregates, evidence.gold),
            dead_letters_expected(evidence.letters, injected, evidence.repeated, evidence.rejected())]


class _Run:
    def __init__(self, settings: Settings, report: ChaosReport, console: Console) -> None:
        self.settings, self.report, self.console = settings, report, console
        self.t0 = time.monotonic()
        #: real API keys for the workload's teams (the request path authenticates every request)
        self.keys: workload.WorkloadKeys | None = None
        #: a cluster's broker faults run beside the workload (apps/chaos/brokers.py)
        self.brokers: BrokerFaults | None = None
        #: wall-clock time the first request was sent (the longest stall is measured from it)
        self.first_sent = 0.0
        #: components exit on their own when the broker they talk to goes away; a cluster run has more
        #: broker faults, so more such exits than a single-broker run
        self.max_restarts = 5

    def note(self, text: str) -> None:
        line = f"{time.monotonic() - self.t0:6.1f} s  {text}"
        self.report.events.append(line)
        self.console.print(line)

    def fire(self, fault: fx.Fault, components: Components, simulator: SimulatorProcess) -> None:
        if fault.kind == "kill":
            fx.kill_and_restart(components, simulator, fault.target)
            self.note(f"kill -9 {fault.target}, restarted")
        elif fault.kind == "broker":
            self.note(f"broker restarted, away {fx.restart_broker(self.settings):.1f} s")
        elif fault.kind in ("leader-kill", "rolling-restart"):
            pass  # scheduled on the broker-fault thread, which notes them as they happen
        elif fault.kind == "malformed":
            landed = fx.inject_malformed(self.settings, Topic(fault.target))
            self.report.injected += landed
            self.note(f"{len(landed)} malformed records into {fault.target}")
        else:
            problem = fx.set_outage(simulator, fault.target, fault.kind == "outage")
            self.note(f"provider {'outage' if fault.kind == 'outage' else 'recovered'}: {fault.target} "
                      f"{problem}".rstrip())

    def drive(self, count: int, duration_s: float, plan: list[fx.Fault], components: Components,
              simulator: SimulatorProcess, watcher: OutcomeWatcher) -> set[str]:
        """Send `count` requests evenly over `duration_s` (every 97th twice) while the faults fire."""
        ids: set[str] = set()
        pending = list(plan)
        requests = workload.requests(count, seed=self.report.seed, run_id=self.report.run_id, keys=self.keys)
        with RequestProducer(self.settings, client_id="chaos") as producer:
            while len(ids) < count or pending or (self.brokers is not None and self.brokers.running()):
                now = time.monotonic() - self.t0
                due = min(count, int(count * now / duration_s) + 1)
                while len(ids) < due:
                    self.first_sent = self.first_sent or time.time()
                    request = next(requests)
                    producer.send(request)
                    if (len(ids) + 1) % DUPLICATE_EVERY == 0:
                        producer.send(request)
                    ids.add(request.request_id)
                while pending and pending[0].at_s <= now:
                    self.fire(pending.pop(0), components, simulator)
                self.supervise(components)
                watcher.poll(0.05)
            producer.flush()
        self.report.sent = len(ids)
        self.note(f"sent {len(ids):,} requests (+{len(ids) // DUPLICATE_EVERY} duplicates)")
        return ids

    def supervise(self, components: Components) -> None:
        before = dict(components.restarts)
        if dead := components.supervise(max_restarts=self.max_restarts):
            raise RuntimeError(f"component(s) {dead} kept exiting; see {components.logs}")
        for name, n in components.restarts.items():
            if n != before.get(name, 0):
                self.note(f"[yellow]{name} exited on its own; restarted[/]")
        self.report.crashes = dict(components.restarts)

    def wait_for_answers(self, ids: set[str], components: Components, watcher: OutcomeWatcher,
                         timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while watcher.outcomes.finished(ids) < len(ids) and time.monotonic() < deadline:
            watcher.poll(0.5)
            self.supervise(components)
        self.note(f"{watcher.outcomes.finished(ids):,} of {len(ids):,} requests answered")

    def settle(self, components: Components, timeout_s: float) -> None:
        """Until the sink and the aggregator have caught up (the invariants hold), or `timeout_s`."""
        injected = set(self.report.injected)
        deadline = time.monotonic() + timeout_s
        while True:
            failing = [v.name for v in check(collect(self.settings), injected) if not v.ok]
            if not failing or time.monotonic() > deadline:
                break
            for _ in range(6):
                time.sleep(0.5)
                self.supervise(components)
        self.note("caught up" if not failing else f"[red]not settled after {timeout_s:.0f} s[/]: {failing}")


def run_chaos(settings: Settings, *, requests: int = 3000, duration_s: float = 60, seed: int | None = None,
              kills: int = 1, kinds: tuple[str, ...] = KILLABLE, broker_restart: bool = True,
              settle_s: float = 180, brokers: int | None = None,
              console: Console | None = None) -> ChaosReport:
    console = console or Console()
    seed = seed if seed is not None else random.randrange(2**31)
    report = ChaosReport(run_id=f"{seed:x}-{uuid.uuid4().hex[:4]}", seed=seed)
    settings = chaos_settings(settings, report.run_id, brokers)
    size = settings.kafka.local.brokers
    console.print(f"[bold]chaos run {report.run_id}[/]: {requests:,} requests over {duration_s:.0f} s, "
                  f"seed {seed} (the same faults again: --seed {seed})"
                  + (f", on a local cluster of {size} brokers" if size > 1 and not settings.kafka.external
                     else ""))
    started_broker = start_infrastructure(settings, console)
    fused = settings.streams.deployment == "fused"  # nothing then reads requests.routed
    plan = fx.plan(duration_s, seed, kills=kills, kinds=deployed(kinds, settings),
                   malformed_into=tuple(t for t in fx.MALFORMED_TOPICS if not (fused and t is Topic.ROUTED)),
                   broker=broker_restart and not settings.kafka.external, brokers=size)
    if settings.kafka.external:
        console.print("[yellow]external cluster: the broker restart is skipped[/]")
    run = _Run(settings, report, console)
    at = {f.kind: f.at_s for f in plan}
    if "leader-kill" in at or "rolling-restart" in at:
        run.brokers = BrokerFaults(settings, run.note, at.get("leader-kill"), at.get("rolling-restart"))
        run.max_restarts = 20
    with stop_broker_on_interrupt(settings, started_broker), Components(settings, name="chaos") as components:
        components.logs = Path(settings.lakehouse.root).parent / "logs"
        if settings.identity.enforce:  # before the workers start, so their key rings load them
            run.keys = workload.provision_keys(settings, actor="chaos")
        simulator = start_simulator(settings, components)
        start_stages(components, settings)
        watcher = OutcomeWatcher(settings)
        try:
            run.t0 = time.monotonic()
            if run.brokers is not None:
                run.brokers.start(run.t0)
            ids = run.drive(requests, duration_s, plan, components, simulator, watcher)
            run.wait_for_answers(ids, components, watcher, timeout_s=settle_s)
            run.settle(components, timeout_s=settle_s)
        finally:
            watcher.close()
    report.verdicts = check(collect(settings), set(report.injected))  # on the final, stopped state
    stall, stall_at = longest_stall(answer_times(settings), since=run.first_sent)
    report.stall = (stall, stall_at - run.first_sent)
    if run.brokers is not None:
        report.replicated, report.broker_errors = run.brokers.log.replicated, run.brokers.log.errors
    _print(console, report, settings, components.logs)
    return report


def deployed(kinds: tuple[str, ...], settings: Settings) -> tuple[str, ...]:
    """The kinds to kill among what this deployment runs: the fused worker stands for the request path
    and the dispatcher (killed once), and is not there when they run staged."""
    running = {name for name, _ in stages(settings)} | {"simulator"}
    fused = "gateway-worker" in running
    mapped = ("gateway-worker" if fused and k in ("streams-worker", "dispatcher") else k for k in kinds)
    return tuple(dict.fromkeys(k for k in mapped if k in running))


def _print(console: Console, report: ChaosReport, settings: Settings, logs: Path) -> None:
    table = Table(title=f"invariants after chaos run {report.run_id} (seed {report.seed})")
    for name in ("", "invariant", "detail"):
        table.add_column(name)
    for v in report.verdicts:
        table.add_row("[green]PASS[/]" if v.ok else "[red]FAIL[/]", v.name, v.detail)
    console.print(table)
    for v in report.verdicts:  # plain lines too, for logs and for grep
        console.print(f"{'PASS' if v.ok else 'FAIL'}  {v.name}: {v.detail}", highlight=False, soft_wrap=True)
    stall, at = report.stall
    console.print(f"longest stall: {stall:.1f} s without an answer (from {at:.1f} s after the first request)",
                  highlight=False)
    for what, took in report.replicated:
        console.print(f"fully replicated again: {took:.1f} s after the restart ({what})", highlight=False)
    for error in report.broker_errors:
        console.print(f"FAILED broker fault: {error}", highlight=False)
    if report.crashes:
        console.print(f"[yellow]exited on their own and were restarted[/]: {report.crashes}")
    console.print(f"topics {settings.kafka.topic_prefix}* · tables {settings.lakehouse.root} · logs {logs}")
