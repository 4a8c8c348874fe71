"""`streamgate demo`: the whole system, as far as it exists, on embedded defaults.

Stages join this run as they land. Today: a real broker and topics from the spec, the provider simulator,
the request-path processors (a worker process), the gateway consumer (a dispatcher process calling
the simulator through the configured providers), a realistic workload sent through the service client
(with duplicates and corrupt records mixed in), and a watcher that waits until every request has its
final response (ok, failed or rejected, each with a reason) and tallies them with their telemetry.
"""

from __future__ import annotations

import json
import logging
import resource
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka import Producer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from apps.demo.frontdoor_traffic import FrontDoorTraffic, pick_port, summary_line, wait_until_up
from apps.demo.lag import LagProbe
from apps.demo.observe import Outcomes, OutcomeWatcher
from apps.demo.pace import Pace
from apps.demo.processes import Components, use_free_metrics_ports
from apps.demo.rag import RagDemoError
from apps.demo.rag_part import RagPart, with_rag
from apps.stack import start_infrastructure, start_simulator, start_stages, stop_broker_on_interrupt
from gateway_consumer.simulator import SimulatorProcess
from schemas.topics import Topic, physical_name
from shared.traffic import workload
from streamgate.client import RequestProducer
from streamgate.config import COMPONENTS, REPO_ROOT, Settings
from streamgate.kafka.clients import producer_config
from streamgate.kafka.launcher import LocalKafka

#: Bytes no producer should ever send: empty, not Avro, an unknown fingerprint, a truncated header.
CORRUPT_RECORDS = (b"", b"not avro at all", b"\xc3\x01\x00\x01\x02\x03\x04\x05\x06\x07garbage",
                   b"\xc3\x01\x12")
DUPLICATE_EVERY = 97
#: Seconds without a single new outcome after which the demo stops waiting (the backlog is not moving).
STALL_S = 120.0


class DemoError(RuntimeError):
    """The demo could not finish; the message says why and where to look (no traceback on the console)."""


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description:<30}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console)


def _produce(settings: Settings, count: int, run_id: str, progress: Progress, pace: Pace | None,
             tick: Callable[[float], None],
             keys: workload.WorkloadKeys | None = None) -> tuple[Counter[str], float]:
    """Send the workload (every 97th request twice), as fast as possible or at `pace` (with its burst);
    `tick(elapsed)` runs between sends. Returns requests per team and seconds; ids are `<run_id>-<n>`."""
    teams: Counter[str] = Counter()
    task = progress.add_task("sending requests", total=count)
    t0 = time.perf_counter()
    with RequestProducer(settings, client_id="demo") as producer:
        for n, request in enumerate(workload.requests(count, run_id=run_id, keys=keys), 1):
            while pace is not None and pace.due(time.perf_counter() - t0) < n:
                tick(time.perf_counter() - t0)
                time.sleep(0.01)
            producer.send(request)
            if n % DUPLICATE_EVERY == 0:
                producer.send(request)
            teams[request.team] += 1
            if n % 500 == 0:
                progress.update(task, completed=n)
                tick(time.perf_counter() - t0)
        producer.flush()
    progress.update(task, completed=count)
    raw = Producer(producer_config(settings, client_id="demo-corrupt", role="service"))
    for bad in CORRUPT_RECORDS:
        raw.produce(physical_name(Topic.REQUESTS, settings.kafka.topic_prefix), value=bad, key=b"corrupt")
    raw.flush(10)
    return teams, time.perf_counter() - t0


def _wait_for_outcomes(watcher: OutcomeWatcher, count: int, components: Components, progress: Progress,
                       stall_s: float, tick: Callable[[float], None]) -> float:
    """Wait while outcomes keep arriving, however long the backlog takes to drain; stop once none has
    arrived for `stall_s` (the caller reports what is missing)."""
    task = progress.add_task("waiting for every outcome", total=count)
    t0 = time.perf_counter()
    seen, last_progress = watcher.outcomes.mine, time.monotonic()
    while watcher.outcomes.mine < count:
        watcher.poll()
        tick(time.perf_counter() - t0)
        progress.update(task, completed=watcher.outcomes.mine)
        if dead := components.supervise():
            raise DemoError(f"component(s) {', '.join(dead)} kept exiting; "
                            f"see their logs in {components.logs}")
        if watcher.outcomes.mine > seen:
            seen, last_progress = watcher.outcomes.mine, time.monotonic()
        elif time.monotonic() - last_progress >= stall_s:
            break
    for _ in range(4):  # late dead letters and verdicts
        watcher.poll(0.25)
    return time.perf_counter() - t0


def _see_answers(watcher: OutcomeWatcher, expected: int, timeout_s: float) -> None:
    """Keep reading until the watcher has seen `expected` answers: the front door's calls can finish
    after the workload's own requests (a loaded machine), and the summary counts both."""
    deadline = time.monotonic() + timeout_s
    while len(watcher.outcomes.answered) < expected and time.monotonic() < deadline:
        watcher.poll(0.25)


def _wait_for_lakehouse(settings: Settings, progress: Progress, timeout_s: float = 90) -> None:
    """Until no bronze table has taken a new commit for two flush periods (the sink has caught up)."""
    from shared.tables.delta import open_table
    from shared.tables.query import find_tables

    task = progress.add_task("lakehouse catching up", total=None)
    quiet_for = 2 * settings.lakehouse.flush_s + 1
    root = settings.table_root()
    last, changed, deadline = None, time.monotonic(), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        tables = find_tables(root)
        state = {name: open_table(path).version() for name, path in tables.items()}
        if state != last:
            last, changed = state, time.monotonic()
        elif time.monotonic() - changed >= quiet_for:
            break
        time.sleep(0.5)
    progress.update(task, total=1, completed=1)


def _print_lakehouse(console: Console, settings: Settings, dates: list[str]) -> None:
    """Silver, gold and the checks over the dates this run landed on, not every run's: over ~5M requests
    of the day's earlier runs, the whole-table version was OOM-killed at 23 GB."""
    from lakehouse.gold import rebuild_all
    from lakehouse.silver import merge_request_facts
    from shared.tables.query import run_query

    try:
        merge_request_facts(settings, dates)
        rebuild_all(settings, dates)
        rows = run_query(settings, "select team, sum(attempts) as attempts, sum(cost_nanousd) as cost_nanousd"
                                   " from gold_daily_cost group by team order by 3 desc")
    except Exception as exc:  # the summary must not fail on the optional part
        console.print(f"[yellow]lakehouse query failed: {exc}[/]")
        return
    table = Table(title="cost by team, all runs (SQL over the Delta table gold_daily_cost)")
    for name in ("team", "attempts", "cost (USD)"):
        table.add_column(name, justify="left" if name == "team" else "right")
    for r in rows.to_pylist():
        table.add_row(r["team"], f"{r['attempts']:,}", f"{(r['cost_nanousd'] or 0) / 1e9:,.4f}")
    console.print(table)
    from lakehouse.quality import alert, record, run_checks

    results = run_checks(settings, dates)
    failed = [r for r in results if not r.success]
    report, alerts = record(settings, results), alert(settings, results)
    for r in failed:
        console.print(f"[red]data quality FAIL[/] {r.table}.{r.column or '*'}: {r.expectation} "
                      f"({r.unexpected:,} unexpected)")
    console.print(f"data quality: {len(results) - len(failed)}/{len(results)} expectations passed "
                  f"({alerts} alert events) · report {report}")
    console.print(f"Delta tables in {settings.table_root()} · try "
                  f"streamgate query \"select * from responses limit 5\"")


class _Ticker:
    """Between sends and polls: once a second sample consumer lag and memory and restart a component
    that exited (the 1M-request demo's gateway worker died 2 minutes into a 10-minute send and was
    restarted only when sending ended); degrade one provider for the middle of a paced run (slow and
    failing), then let it recover."""

    DEGRADED = ("gpt-4o", {"median_ms": 900, "p99_ms": 4000, "error_rate": 0.3})

    def __init__(self, lag: LagProbe, simulator: SimulatorProcess, pace: Pace | None,
                 console: Console, components: Components) -> None:
        self.lag, self.simulator, self.pace, self.console = lag, simulator, pace, console
        self.components = components
        self.next_sample, self.phase = 0.0, "healthy"

    def __call__(self, elapsed_s: float) -> None:
        if time.monotonic() >= self.next_sample:
            self.lag.sample()
            self.components.sample_memory()
            if dead := self.components.supervise():
                raise DemoError(f"component(s) {', '.join(dead)} kept exiting; "
                                f"see their logs in {self.components.logs}")
            self.next_sample = time.monotonic() + 1.0
        if self.pace is None:
            return
        share = elapsed_s / self.pace.duration_s
        model, profile = self.DEGRADED
        if self.phase == "healthy" and share >= 0.35:
            self.simulator.set_profile(model, **profile)
            self.phase = "degraded"
            self.console.print(f"[yellow]provider degraded[/]: {model} slow and failing 30% of calls")
        elif self.phase == "degraded" and share >= 0.65:
            self.simulator.reset_profile(model)
            self.phase = "recovered"
            self.console.print(f"[green]provider recovered[/]: {model}")


def _print_metrics(console: Console, settings: Settings) -> None:
    metrics, fused = settings.metrics, settings.streams.deployment == "fused"
    # the fused gateway worker serves on the dispatcher's port; there is no streams worker then
    names = {"dispatcher": "gateway-worker"} if fused else {}
    ports = [f"{names.get(c, c.replace('_', '-'))} :{metrics.port(c)}" for c in COMPONENTS
             if metrics.port(c) and not (fused and c == "streams_worker")]
    if ports:
        console.print(f"[bold]metrics[/] http://{metrics.host}:<port>/metrics and /healthz on "
                      + ", ".join(ports))


def _print_features(console: Console, settings: Settings) -> None:
    """The Feast store after the run: daily features from gold materialized, the stream-pushed ones read
    online as the gateway reads them."""
    from features.serving import online_summary

    try:
        started = time.perf_counter()
        summary = online_summary(settings)
    except Exception as exc:  # the summary must not fail on the optional part
        console.print(f"[yellow]feature store failed: {exc}[/]")
        return
    table = Table(title="online features (Feast), pushed from the streams: provider health, last 5 minutes")
    for name in ("provider/model", "latency p95 (ms)", "error rate", "attempts"):
        table.add_column(name, justify="left" if name == "provider/model" else "right")
    for target, row in summary.targets.items():
        table.add_row(target, _num(row["latency_p95_ms"], "{:,.0f}"), _num(row["error_rate"], "{:.3f}"),
                      _num(row["attempts_5m"], "{:,.0f}"))
    console.print(table)
    spend = ", ".join(f"{team} ${usd / 1e9:,.4f}" for team, usd in summary.team_spend_today.items())
    console.print(f"team spend today (online, pushed): {spend or 'none yet'}")
    console.print(f"feature store: {summary.views} views applied, gold materialized in "
                  f"{time.perf_counter() - started:.1f} s · repo {summary.repo} · try "
                  f"streamgate features online provider_health openai/gpt-4o-mini")


def _dates_since(started_ms: int) -> list[str]:
    """The UTC dates from the run's start to now: where its records landed (a run may cross midnight)."""
    day, last = datetime.fromtimestamp(started_ms / 1000, UTC).date(), datetime.now(UTC).date()
    dates = []
    while day <= last:
        dates.append(day.isoformat())
        day += timedelta(days=1)
    return dates


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def run_demo(settings: Settings, *, requests: int = 5000, duration_s: float | None = None,
             stall_s: float = STALL_S, console: Console | None = None) -> Outcomes:
    """`duration_s` paces the requests over that many seconds, with a 50x burst and a provider that
    degrades and recovers; without it they are sent as fast as possible. The wait for outcomes lasts as
    long as they keep arriving, and gives up (DemoError) after `stall_s` without one."""
    console = console or Console()
    pace = Pace(requests, duration_s) if duration_s else None
    run_id, started_ms = uuid.uuid4().hex[:8], int(time.time() * 1000)
    _log_to_file(settings)
    started_broker = start_infrastructure(settings, console)
    settings = with_rag(use_free_metrics_ports(settings))
    rag = RagPart(settings, console)
    with stop_broker_on_interrupt(settings, started_broker), Components(settings) as components:
        _watch_broker(settings, components)
        simulator = start_simulator(settings, components)
        console.print(f"[bold]simulator[/] {simulator.url} (profiles: {settings.simulator.profiles})")
        keys = _issue_keys(settings, console)
        rag.prepare()  # before the workers: they adopt the published collection as they start
        door = _start_components(settings, components, console)
        watcher = OutcomeWatcher(settings, run_id)
        lag = LagProbe(settings)
        tick = _Ticker(lag, simulator, pace, console, components)
        try:
            with _progress(console) as progress:
                if pace is not None:
                    start, end = pace.burst()
                    console.print(f"pacing {requests:,} requests over {pace.duration_s:.0f} s "
                                  f"({pace.base_rate:,.0f}/s, 50x burst from {start:.0f} to {end:.1f} s)")
                door_traffic = _frontdoor_traffic(settings, door, requests, duration_s)
                teams, send_s = _produce(settings, requests, run_id, progress, pace, tick, keys)
                wait_s = _wait_for_outcomes(watcher, requests, components, progress, stall_s, tick)
                door_stats = door_traffic.result(stall_s)  # its calls are answered: they land too
                asked = _ask_rag(rag, keys, console)
                _see_answers(watcher, requests + (door_stats.sent if door_stats else 0) + asked, stall_s)
                _wait_for_lakehouse(settings, progress)
            if components.restarts:
                console.print(f"[yellow]restarted after exiting[/]: {components.restarts} "
                              f"(see {components.logs})")
        finally:
            watcher.close()
            lag.close()
    outcomes = watcher.outcomes
    _print_summary(console, outcomes, teams, settings, send_s, wait_s)
    console.print(summary_line(door_stats, door_traffic.error))
    _print_peaks(console, lag, components)
    _print_lakehouse(console, settings, _dates_since(started_ms))
    _print_rag_lineage(console, rag)
    _print_backtest(console, settings, datetime.fromtimestamp(started_ms / 1000, UTC).isoformat())
    _write_report(console, settings)
    _print_features(console, settings)
    console.print(f"demo process peak memory, summary included: "
                  f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    missing = requests - outcomes.mine
    if missing:
        raise DemoError(f"{missing:,} of {requests:,} requests have no outcome: none arrived for "
                        f"{stall_s:.0f} s ({wait_s:.0f} s after the last send). The component logs in "
                        f"{components.logs} say why.")
    return outcomes


def _ask_rag(rag: RagPart, keys: workload.WorkloadKeys | None, console: Console) -> int:
    """The RAG part's tagged questions; returns how many were answered (the watcher then sees them)."""
    try:
        return len(rag.ask(keys))
    except (RagDemoError, TimeoutError) as exc:  # the summary must not fail on this part; the test checks it
        console.print(f"[yellow]RAG part failed: {exc}[/]")
        return 0


def _print_rag_lineage(console: Console, rag: RagPart) -> None:
    try:
        rag.lineage()
    except Exception as exc:  # the summary must not fail on the optional part
        console.print(f"[yellow]RAG lineage query failed: {exc}[/]")


def _issue_keys(settings: Settings, console: Console) -> workload.WorkloadKeys | None:
    """Real keys, issued before the request path starts and loads them (none when identity is off)."""
    if not settings.identity.enforce:
        return None
    keys = workload.provision_keys(settings, actor="demo")
    console.print(f"[bold]API keys[/] {len(keys)} issued on the keys topic (`streamgate keys list`)")
    return keys


def _start_components(settings: Settings, components: Components, console: Console) -> str:
    """Every stage as its own process, and the front door; returns the front door's base URL."""
    start_stages(components, settings)
    _print_metrics(console, settings)
    components.start("feature-pusher", "features", "push")
    components.start("rag-worker", "rag", "worker")
    return _start_frontdoor(settings, components, console)


def _watch_broker(settings: Settings, components: Components) -> None:
    """The local broker's memory is reported with the run's processes (an external one is not ours)."""
    if (broker_pid := LocalKafka(settings).status().pid) is not None:
        components.watched["kafka broker"] = broker_pid


def _print_peaks(console: Console, lag: LagProbe, components: Components) -> None:
    """Each stage's consumer-lag peak, and the peak resident memory of every process of the run
    (VmHWM), this one included."""
    lags = ", ".join(f"{stage} {n:,}" for stage, n in lag.peak.items())
    console.print(f"consumer lag peak (records not yet committed): {lags}")
    peaks = dict(components.peak_rss)
    peaks["demo (this process)"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    console.print("peak memory (RSS): "
                  + ", ".join(f"{name} {n / 2**20:,.0f} MB" for name, n in peaks.items()))


def _log_to_file(settings: Settings) -> None:
    """This process's library logging (librdkafka through confluent-kafka, deltalake, feast) goes to
    `<state>/logs/demo.log`: the console is for the demo's own progress and summary."""
    logs = settings.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    if not any(getattr(h, "baseFilename", None) == str(logs / "demo.log") for h in root.handlers):
        handler = logging.FileHandler(logs / "demo.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(min(root.level or logging.INFO, logging.INFO))


def _start_frontdoor(settings: Settings, components: Components, console: Console) -> str:
    """`streamgate serve` as one more component; returns its base URL once it answers."""
    port = pick_port(settings.frontdoor.host, settings.frontdoor.port)
    components.start("frontdoor", "serve", "--port", str(port))
    url = f"http://{settings.frontdoor.host}:{port}"
    console.print(f"[bold]front door[/] {url}/v1 (OpenAI and Anthropic APIs; `streamgate serve`)")
    return url


def _frontdoor_traffic(settings: Settings, url: str, requests: int,
                       duration_s: float | None) -> FrontDoorTraffic:
    """One call in 20 goes through the front door with the openai SDK, as a service would send it."""
    from shared.identity.admin import KeyAdmin

    _, key = KeyAdmin(settings, actor="demo").create("search", "ranker")
    wait_until_up(url)
    return FrontDoorTraffic(url, key, frontdoor_calls(requests), duration_s or 10.0,
                            settings.frontdoor.timeout_s)


#: The front door's share stops growing here: a service's calls each hold a connection while they wait,
#: and at a million requests the pipeline runs minutes behind, so 50,000 calls (one in 20) would wait
#: out the front door's timeout ten thousand at a time, past the SDK's pool of 1,000 connections.
FRONTDOOR_CALLS_MAX = 2_000


def frontdoor_calls(requests: int) -> int:
    """How many calls the demo sends through the front door beside `requests` Kafka requests: one in 20,
    at least 20 and at most :data:`FRONTDOOR_CALLS_MAX`."""
    return max(20, min(requests // 20, FRONTDOOR_CALLS_MAX))


def _print_backtest(console: Console, settings: Settings, since: str) -> None:
    """This run's recorded traffic replayed through the live policy itself (nothing may change) and
    through an example candidate (apps/backtest/run.py: `example_candidate`), whose diff the report
    shows. The run's, not the last day's: a replay holds its window (~1 KB per request)."""
    from apps.backtest.run import backtest, example_candidate, save_summary, write_policy
    from shared.policy.config import load_policy

    try:
        live = load_policy()
        same = backtest(settings, live, since=since, sample=0)
        candidate = example_candidate(live)
        changed = backtest(settings, candidate, since=since)
        save_summary(settings, changed)
        path = write_policy(candidate, settings.state_dir / "backtest" / "candidate.yaml")
    except Exception as exc:  # the summary must not fail on the optional part
        console.print(f"[yellow]policy backtest failed: {exc}[/]")
        return
    fid = same["fidelity"]
    console.print(f"policy backtest, live policy against itself: {same['changed']} changed of "
                  f"{same['requests']:,} requests (its replay matches {fid['status_matches']:,}/"
                  f"{fid['replayed']:,} recorded outcomes) · candidate {candidate.version} (EMAIL blocked, "
                  f"gpt-4o-mini on sim-small): newly rejected {changed['newly_rejected']:,}, newly "
                  f"allowed {changed['newly_allowed']:,}, re-routed {changed['rerouted']:,}, cost "
                  f"${changed['actual_cost_usd']:,.4f} -> ${changed['projected_cost_usd']:,.4f} "
                  f"({changed['elapsed_s']:.1f} s) · try streamgate policy backtest {path}")


def _write_report(console: Console, settings: Settings) -> None:
    from apps.report.page import write_report

    try:
        path = write_report(settings, settings.state_dir / "report.html")
    except Exception as exc:  # the summary must not fail on the optional part
        console.print(f"[yellow]report failed: {exc}[/]")
        return
    console.print(f"[bold]report[/] {path} (charts of spend, latency, errors, guardrails, cache; "
                  f"`streamgate report --serve 8050` serves it live)")


def _table(title: str, label: str, counts: Counter[str]) -> Table:
    table = Table(title=title)
    table.add_column(label)
    table.add_column("count", justify="right")
    for key, n in counts.most_common(12):
        table.add_row(key, f"{n:,}")
    return table


def _print_summary(console: Console, o: Outcomes, teams: Counter[str], settings: Settings,
                   send_s: float, wait_s: float) -> None:
    results: Counter[str] = Counter(f"{status}" for status in o.answered.values() if status == "ok")
    results.update(f"rejected: {reason}" for reason in o.rejected.values())
    results.update({f"failed: {reason}": n for reason, n in o.failures.items()})
    console.print(_table("requests by outcome", "outcome", results))
    console.print(_table("requests by team", "team", teams))
    console.print(_table("routing split (first target)", "requested -> target", o.routes))
    console.print(_table("guardrail hits (entities found)", "entity", o.entities))
    console.print(_table("dead letters by reason", "reason", o.dead_letters))
    console.print(_table("provider attempts (telemetry)", "provider/model outcome", o.attempts))
    total = sum(teams.values())
    console.print(f"sent {total:,} requests in {send_s:.1f} s; every outcome known {wait_s:.1f} s later "
                  f"({total / max(send_s + wait_s, 1e-9):,.0f} requests/s end to end); "
                  f"{o.audits} audit events")
    lat = o.latencies_ms
    if lat.count:
        console.print(f"answered: {lat.count:,.0f} ok ({o.cache_hits['exact']:,} exact and "
                      f"{o.cache_hits['semantic']:,} semantic cache hits), latency p50 "
                      f"{lat.get_quantile_value(0.5):,.0f} ms, p99 {lat.get_quantile_value(0.99):,.0f} ms "
                      f"(simulated "
                      f"providers); spend ${o.cost_nanousd / 1e9:,.4f}; answered twice: {o.answered_twice}")
    own = o.gateway_ms
    if own.count:
        console.print(f"gateway's own added latency (answer completed minus the client's send, minus "
                      f"provider time; {own.count:,.0f} provider answers): "
                      f"p50 {own.get_quantile_value(0.5):,.1f} ms, "
                      f"p99 {own.get_quantile_value(0.99):,.1f} ms")
    console.print(pii_quality_line())
    console.print(f"broker {settings.kafka.bootstrap()} · state and logs in {settings.state_dir}")


def pii_quality_line(path: Path = REPO_ROOT / "bench" / "results" / "pii.json") -> str:
    """How good the PII guardrail the demo ran is, from the last `streamgate bench pii` (labeled data,
    not the demo's traffic): the weakest type's recall and precision on each split."""
    try:
        result = json.loads(path.read_text())
        parts = []
        for split in ("dev", "heldout"):
            per_type = result[split]["streamgate"]["per_type"].values()
            parts.append(f"{split} recall >= {min(t['recall'] for t in per_type):.3f}, "
                         f"precision >= {min(t['precision'] for t in per_type):.3f}")
    except (OSError, ValueError, KeyError, TypeError):
        return "PII detector: no held-out figures yet (`streamgate bench pii`)"
    return (f"PII detector (6 pattern types, `streamgate bench pii` {result['measured_at'][:10]}): "
            f"{'; '.join(parts)}; {result['speedup']:.0f}x Presidio's speed; names/places/organisations "
            "only for teams whose policy names them")
