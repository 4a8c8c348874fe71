"""End-to-end latency as a caller sees it: request produced with `streamgate.client` -> its answer readable
on the caller's reply partition, through the request path and the dispatcher (cache off, 0 ms simulator),
at paced rates.

Processes (each its own, so no GIL is shared where production would not share it): the simulator (with a
request log, below), the gateway worker (the default, fused deployment; staged: a streams worker and a
dispatcher), the paced producer, and this process as the observer. Fused, a routed record becomes
readable with its answer (one transaction), so "routed readable" then comes after the provider call.

How each hop is measured (every time is `time.time()` on this one machine, microsecond resolution):
- client send: the producer process, immediately before `RequestProducer.send` (the real client, its
  own producer settings).
- routed readable: an observer consumer of `requests.routed` with the dispatcher's own consumer settings
  (`routed_consumer_config`: same isolation level, same fetch settings), assigned to every partition;
  the time its consume call returned the record.
- provider call / provider return: the simulator's request log, an aiohttp middleware around the real
  simulator app: when the request reached the handler chain and when the handler returned. The prompt
  carries the request id, which is how a call is matched to its request.
- answer readable (the caller's): every request names partition 0 of `replies`; an observer reads it
  with `caller_reply_config`, as streamgate.client's reply reader and the front door do (before the
  transaction commits by default, `client.answer_before_commit`); the time its poll returned the answer.
- committed: an observer consumer of `responses` with `reply_consumer_config` (read_committed: what the
  aggregator, the lakehouse and every other downstream reader see).
Hops: send -> routed readable; routed readable -> provider call (the dispatcher's consume and HTTP send;
can be slightly negative when the dispatcher reads before the observer); provider call (server side);
provider return -> answer readable (HTTP answer parsed, produce, and, reading committed, the transaction
commit; then the fetch); total (send -> the caller's answer readable); committed (send -> the answer
readable on `responses`).

Baselines in the same run: the settings shipped before issue 16 (staged, commit intervals 100 ms, routed
read read_committed) at 50 and 500/s, and the staged deployment on today's settings, on the same code and
machine.

Overload: the defaults at OVERLOAD_RATE (above what the two cores hold) with every request carrying a
deadline of OVERLOAD_DEADLINE_S (`deadline_at`, set at send time), against the same rate without one
from the defaults' own ladder: how many callers get an answer in time, how long they wait, and how soon
after the last send every request has its outcome (a request past its deadline is answered
`deadline_exceeded` without a provider call).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from apps.demo.processes import use_simulator_port, write_config
from bench.harness import bench_settings, wait_until, write_result
from schemas import make_codec
from streamgate.config import Settings
from streamgate.kafka.clients import caller_reply_config, reply_consumer_config, routed_consumer_config

SIM_PORT = 18191
MODEL = "gpt-4o-mini"  # team search's route: openai/gpt-4o-mini, set to 0 ms below
RATES = (50, 500, 2000)
#: Between the named rates, so that `max_rate_p99_under_100ms` can land between 50 and 500.
INTERMEDIATE = (100, 250)
SATURATION = (3000, 4000, 5000, 6000)
OVERLOAD_RATE, OVERLOAD_DEADLINE_S, OVERLOAD_SECONDS = 3000, 1.0, 6.0
SECONDS = {50: 12.0, 500: 10.0}  # per rate; others 6 s
WAIT_S = 30.0  # after the last send, for the last answers
BROKER_WARM = (300.0, 120.0)  # before the first configuration: rate, seconds (`measure`)
HOPS = ("send_to_routed", "routed_to_call", "call", "return_to_answer", "total", "committed")


# -- the simulator with a request log ------------------------------------------------------------------
def _serve_simulator(port: int) -> None:
    """The real simulator (its fast path in front of its app), logging each call's arrival and return."""
    from aiohttp import web

    from gateway_consumer.simulator import fast_path
    from gateway_consumer.simulator.profiles import load_profiles
    from gateway_consumer.simulator.server import create_app
    from streamgate.config import REPO_ROOT

    log: list[tuple[str, float, float]] = []

    def timed(body: dict[str, Any], began: float, ended: float) -> None:
        text = str((body.get("messages") or [{}])[-1].get("content", ""))
        if text.startswith("probe "):
            log.append((text.split()[1], began, ended))

    async def take(_: web.Request) -> web.Response:
        out = list(log)
        log.clear()
        return web.json_response(out)

    app = create_app(load_profiles(REPO_ROOT / "config" / "simulator.yaml"), seed=1)
    app.router.add_get("/bench/log", take)
    fast_path.run(app, "127.0.0.1", port, observe=timed)


# -- the paced client --------------------------------------------------------------------------------
def _produce(config: str, rate: float, seconds: float, out: str, api_key: str,
             deadline_s: float | None = None) -> None:
    """Send `rate`/s for `seconds` with the real client; write {request_id: send time} and its CPU seconds
    while sending to `out`. `deadline_s`: each request's deadline, that long after it is sent."""
    from streamgate.client import RequestProducer, build_request
    from streamgate.config import load_settings

    settings = load_settings(config)
    n = int(rate * seconds)
    requests = [build_request(team="search", project="ranker", model=MODEL, api_key=api_key,
                              reply_partition=0, messages=[{"role": "user", "content": "probe PLACEHOLDER"}])
                for _ in range(n)]
    requests = [r.model_copy(update={"messages": [r.messages[0].model_copy(
        update={"content": f"probe {r.request_id} what is the capital of France"})]}) for r in requests]
    sent: dict[str, float] = {}
    with RequestProducer(settings, client_id="bench-latency") as producer:
        # a service's producer is long-lived: connected, authenticated and holding its idempotence id
        # before its traffic. Without this the first ~0.5 s of every rate waited for all three, and
        # those requests were the 50/s run's p99 (the warm-up request is answered, and not counted).
        warm = build_request(team="search", project="ranker", model=MODEL, api_key=api_key,
                             messages=[{"role": "user", "content": "warm-up"}])
        producer.send(warm)
        producer.flush(30)
        cpu0, t0 = time.process_time(), time.time()
        for i, request in enumerate(requests):
            wait_until(producer, t0 + i / rate)
            sent[request.request_id] = now = time.time()
            producer.send(request if deadline_s is None else request.model_copy(
                update={"deadline_at_ms": int((now + deadline_s) * 1000)}))
            producer.poll(0)
        producer.flush(30)
        cpu_s = time.process_time() - cpu0  # pacing and sending only: not its start-up or request building
    Path(out).write_text(json.dumps({"sent": sent, "cpu_s": cpu_s}))


# -- the observer ------------------------------------------------------------------------------------
class Observer:
    """Records when each request's routed record, its caller's answer and its committed answer became
    readable."""

    def __init__(self, settings: Settings) -> None:
        prefix = settings.kafka.topic_prefix
        self.routed_topic, self.responses_topic = prefix + "requests.routed", prefix + "responses"
        self.replies_topic = prefix + "replies"
        self.routed_codec = make_codec(self.routed_topic, "RoutedRequest", None)
        self.response_codec = make_codec(self.responses_topic, "Response", None)
        group = f"bench-latency-{uuid.uuid4().hex[:6]}"
        configs = {
            self.routed_topic: routed_consumer_config(settings, group_id=f"{group}-r", role="admin"),
            self.responses_topic: reply_consumer_config(settings, client_id=f"{group}-a", role="admin"),
            self.replies_topic: caller_reply_config(settings, client_id=f"{group}-c", role="admin")}
        self.consumers = {topic: Consumer(config) for topic, config in configs.items()}
        self.routed_at: dict[str, float] = {}
        self.committed_at: dict[str, float] = {}
        self.answered_at: dict[str, tuple[float, str]] = {}  # the caller's: first answer on its partition
        self.running = True
        self.threads = [threading.Thread(target=self._read, args=(c, t), daemon=True)
                        for t, c in self.consumers.items()]

    def start(self) -> None:
        for topic, consumer in self.consumers.items():
            parts = [0] if topic == self.replies_topic else \
                consumer.list_topics(topic, timeout=10).topics[topic].partitions
            consumer.assign([TopicPartition(topic, p, -1) for p in parts])  # -1: the end
        for thread in self.threads:
            thread.start()

    def _read(self, consumer: Consumer, topic: str) -> None:
        while self.running:
            msg = consumer.poll(0.05)
            if msg is None:
                continue
            now = time.time()
            for m in [msg, *consumer.consume(1000, timeout=0)]:
                if m.error() is None:
                    self._record(topic, m.value() or b"", now)

    def _record(self, topic: str, value: bytes, now: float) -> None:
        if topic == self.routed_topic:
            self.routed_at.setdefault(self.routed_codec.decode(value)["request_id"], now)
            return
        answer = self.response_codec.decode(value)
        if topic == self.responses_topic:
            self.committed_at.setdefault(answer["request_id"], now)
        else:
            status = answer["status"]
            if status != "ok":
                status += f":{answer['reason_code']}"
            self.answered_at.setdefault(answer["request_id"], (now, status))

    def stop(self) -> None:
        self.running = False
        for thread in self.threads:
            thread.join(5)
        for consumer in self.consumers.values():
            consumer.close()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * q), len(ordered) - 1)]


def _summary(values: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(values), "p90": _pct(values, 0.90), "p99": _pct(values, 0.99),
            "max": max(values)} if values else {}


def _simulator_log(port: int) -> dict[str, tuple[float, float]]:
    import httpx

    rows = httpx.get(f"http://127.0.0.1:{port}/bench/log", timeout=30).json()
    return {rid: (began, ended) for rid, began, ended in rows}


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_rate(settings: Settings, config: Path, workdir: Path, rate: float, seconds: float,
             api_key: str, pids: dict[str, int] | None = None,
             deadline_s: float | None = None) -> dict[str, Any]:
    load_before = os.getloadavg()[0]  # the machine is shared: say how busy it was
    cpu_before = {name: _cpu_s(pid) for name, pid in (pids or {}).items()}
    own_before = time.process_time()  # the observers' threads (the paced client reports its own)
    observer = Observer(settings)
    observer.start()
    time.sleep(1.0)  # assigned at the end before the first send
    _simulator_log(SIM_PORT)  # drop what earlier runs left
    out = workdir / f"sent-{rate:g}.json"
    producer = multiprocessing.get_context("spawn").Process(
        target=_produce, args=(str(config), rate, seconds, str(out), api_key, deadline_s))
    producer.start()
    producer.join()
    written = json.loads(out.read_text())
    sent: dict[str, float] = written["sent"]
    deadline = time.time() + WAIT_S
    while min(len(observer.answered_at), len(observer.committed_at)) < len(sent) and time.time() < deadline:
        time.sleep(0.2)
    observer.stop()
    cpu_ms = {name: (_cpu_s(pid) - cpu_before[name]) * 1000 / max(len(sent), 1)
              for name, pid in (pids or {}).items()}
    cpu_ms["client"] = written["cpu_s"] * 1000 / max(len(sent), 1)
    cpu_ms["observers"] = (time.process_time() - own_before) * 1000 / max(len(sent), 1)
    calls = _simulator_log(SIM_PORT)
    hops: dict[str, list[float]] = {h: [] for h in HOPS}
    statuses: dict[str, int] = {}
    ok_totals: list[float] = []
    last_answer = 0.0
    for rid, sent_at in sent.items():
        answer = observer.answered_at.get(rid)
        if answer is None:
            continue
        answered, status = answer
        statuses[status] = statuses.get(status, 0) + 1
        last_answer = max(last_answer, answered)
        hops["total"].append((answered - sent_at) * 1000)
        if status == "ok":
            ok_totals.append((answered - sent_at) * 1000)
        if (committed := observer.committed_at.get(rid)) is not None:
            hops["committed"].append((committed - sent_at) * 1000)
        routed, call = observer.routed_at.get(rid), calls.get(rid)
        if routed is not None:
            hops["send_to_routed"].append((routed - sent_at) * 1000)
        if routed is not None and call is not None:
            hops["routed_to_call"].append((call[0] - routed) * 1000)
        if call is not None:
            hops["call"].append((call[1] - call[0]) * 1000)
            hops["return_to_answer"].append((answered - call[1]) * 1000)
    span = max(sent.values()) - min(sent.values()) if len(sent) > 1 else 1.0
    last_sent = max(sent.values(), default=0.0)
    return {"rate": rate, "sent": len(sent), "answered": len(hops["total"]), "statuses": statuses,
            "deadline_s": deadline_s, "ok_total": _summary(ok_totals),
            "ok_within_1s": sum(1 for t in ok_totals if t <= 1000.0),
            "last_answer_after_last_send_s": round(last_answer - last_sent, 2) if last_answer else None,
            "load_before": load_before, "load_after": os.getloadavg()[0], "cpu_ms_per_request": cpu_ms,
            "achieved_send_rate": len(sent) / span if span else 0.0,
            **{h: _summary(v) for h, v in hops.items()}}


def _keep_logs(workdir: Path, name: str) -> Path:
    """Copy `name`'s worker logs out of the run's temporary directory, which is removed at its end."""
    kept = Path(tempfile.gettempdir()) / f"bench-latency-{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    kept.mkdir(parents=True, exist_ok=True)
    for log in workdir.glob(f"{name}-*.log"):
        shutil.copy(log, kept / log.name)
    return kept


class Pipeline:
    """The request path and the dispatcher on `settings`, as the CLI runs them: one gateway worker when
    deployed fused (apps/gateway/), else a streams worker and a dispatcher."""

    def __init__(self, settings: Settings, workdir: Path, name: str, floor: bool = False) -> None:
        """`floor`: the bare exactly-once relay (bench/bare_relay.py) in the gateway's place."""
        self.settings = settings
        fused = settings.streams.deployment == "fused"
        state = settings.with_state_dir(workdir)
        self.config = write_config(state, workdir / f"{name}.yaml")
        exe = str(Path(sys.executable).parent / "streamgate")
        self.procs, self.names = [], []
        commands = ([("gateway", [sys.executable, "-m", "bench.bare_relay"])] if floor else
                    [("gateway", [exe, "gateway", "worker", "--instance", name])] if fused else
                    [("streams_worker", [exe, "streams", "worker", "--instance", name]),
                     ("dispatcher", [exe, "dispatch", "worker", "--instance", name])])
        for role, args in commands:
            with open(workdir / f"{name}-{role}.log", "wb") as log:
                command = [*args, "--config", str(self.config)]
                self.procs.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
            self.names.append(role)

    def pids(self) -> dict[str, int]:
        from bench.broker_cost import broker_pid

        return {**{n: p.pid for n, p in zip(self.names, self.procs, strict=True)},
                "broker": broker_pid(self.settings)}

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def _configure(base: Settings, prefix: str, **changes: Any) -> Settings:
    """Cache off, metrics off, simulator at SIM_PORT, a topic prefix of its own, then `changes`
    (dotted section -> field updates, e.g. streams={"commit_interval_ms": 100})."""
    from streamgate.kafka.topics import apply_spec

    settings = use_simulator_port(base, SIM_PORT)
    cache = settings.dispatch.cache.model_copy(update={"enabled": False})
    update: dict[str, Any] = {
        "kafka": settings.kafka.model_copy(update={"topic_prefix": prefix, **changes.get("kafka", {})}),
        "metrics": settings.metrics.model_copy(update={"enabled": False}),
        "dispatch": settings.dispatch.model_copy(update={"cache": cache, **changes.get("dispatch", {})}),
        "streams": settings.streams.model_copy(update=changes.get("streams", {})),
        "client": settings.client.model_copy(update=changes.get("client", {}))}
    settings = settings.model_copy(update=update)
    apply_spec(settings)  # topics and the principals' ACLs under this prefix
    return settings


def measure(settings: Settings, workdir: Path, name: str, rates: Sequence[tuple[float, float]],
            stop_p99_ms: float | None = None, others: dict[str, int] | None = None,
            warm: tuple[float, float] = (100, 3), stop_above: float = 0,
            deadline_s: float | None = None, floor: bool = False) -> list[dict[str, Any]]:
    """`stop_p99_ms`: end the ladder at the first rate above `stop_above` whose p99 is over it (or that
    lost answers). `others`: more processes whose CPU per request to report (name -> pid: the
    simulator's). `warm`: rate and seconds of unmeasured traffic first (connections, transactions; on a
    freshly started broker, its JIT: the broker's compiler threads take tens of seconds of CPU in its
    first minutes of traffic, and a cold broker measured p50 1.1 s at 500/s where a warm one measured
    52 ms). `floor`: measure the bare relay instead of the gateway (bench/bare_relay.py)."""
    from shared.identity.admin import KeyAdmin

    # a real key of team search, issued before the request path starts and loads its key ring
    api_key = KeyAdmin(settings.with_state_dir(workdir), actor="bench").create(
        "search", "ranker")[1]
    pipeline = Pipeline(settings, workdir, name, floor=floor)
    results = []
    try:
        time.sleep(8)  # both joined their groups and hold their partitions
        run_rate(settings, pipeline.config, workdir, warm[0], warm[1], api_key)
        for rate, seconds in rates:
            if not pipeline.alive():
                raise RuntimeError(f"a worker exited; see {workdir}/{name}-*.log")
            result = run_rate(settings, pipeline.config, workdir, rate, seconds, api_key,
                              pipeline.pids() | (others or {}), deadline_s)
            results.append(result)
            total = result["total"]
            print(f"{name} {rate:>6.0f}/s sent {result['sent']} answered {result['answered']} "
                  f"total p50 {total.get('p50', float('nan')):.1f} p99 {total.get('p99', float('nan')):.1f} "
                  f"max {total.get('max', float('nan')):.1f} ms", flush=True)
            if result["answered"] < result["sent"]:
                print(f"  answers missing: the workers' logs so far are kept in {_keep_logs(workdir, name)}",
                      flush=True)
            if stop_p99_ms is not None and rate > stop_above and (
                    result["answered"] < result["sent"] or total.get("p99", 1e9) > stop_p99_ms):
                break
    finally:
        pipeline.stop()
    return results


def main() -> dict[str, Any]:
    base = bench_settings()
    sim = multiprocessing.get_context("spawn").Process(target=_serve_simulator, args=(SIM_PORT,), daemon=True)
    sim.start()
    try:
        import httpx

        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{SIM_PORT}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        httpx.put(f"http://127.0.0.1:{SIM_PORT}/admin/profiles/{MODEL}", timeout=5,
                  json={"median_ms": 0, "p99_ms": 0, "error_rate": 0, "rate_limit_rate": 0,
                        "hang_rate": 0}).raise_for_status()
        sim_cpu = {"simulator": sim.pid or 0}
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            prefix = base.kafka.topic_prefix
            old = _configure(base, prefix + "before.", streams=BEFORE_STREAMS, dispatch=BEFORE_DISPATCH,
                             client=BEFORE_CLIENT)
            baseline = measure(old, workdir, "before", [(50, SECONDS[50]), (500, SECONDS[500])],
                               others=sim_cpu, warm=BROKER_WARM)
            new = _configure(base, prefix + "defaults.")
            plan = [(r, SECONDS.get(r, 6.0)) for r in (*sorted(RATES + INTERMEDIATE), *SATURATION)]
            runs = measure(new, workdir, "defaults", plan, stop_p99_ms=1000, others=sim_cpu,
                           stop_above=max(RATES))
            if not any(r["rate"] == OVERLOAD_RATE for r in runs):  # the ladder stopped before it
                runs += measure(new, workdir, "defaults", [(OVERLOAD_RATE, OVERLOAD_SECONDS)], others=sim_cpu)
            overload = _configure(base, prefix + "overload.")
            overload_runs = measure(overload, workdir, "overload", [(OVERLOAD_RATE, OVERLOAD_SECONDS)],
                                    others=sim_cpu, deadline_s=OVERLOAD_DEADLINE_S)
            after = _configure(base, prefix + "committed.", client={"answer_before_commit": False})
            committed_runs = measure(after, workdir, "committed", [(50, SECONDS[50]), (500, SECONDS[500])],
                                     others=sim_cpu)
            staged = _configure(base, prefix + "staged.", streams={"deployment": "staged"})
            staged_runs = measure(staged, workdir, "staged", [(r, SECONDS.get(r, 6.0)) for r in RATES],
                                  others=sim_cpu)
            early = _configure(base, prefix + "early.", streams={"deployment": "staged"},
                               dispatch={"read_routed_uncommitted": True})
            early_runs = measure(early, workdir, "early", [(500, SECONDS[500]), (2000, 6.0)], others=sim_cpu)
            bare = _configure(base, prefix + "floor.")
            floor_runs = measure(bare, workdir, "floor", [(r, 6.0) for r in (500, *FLOOR_RATES)],
                                 stop_p99_ms=1000, others=sim_cpu, stop_above=500, floor=True)
            many_runs: list[dict[str, Any]] = []
            if base.kafka.partitions != MANY_PARTITIONS:
                many = _configure(base, prefix + "many.", kafka={"partitions": MANY_PARTITIONS})
                many_runs = measure(many, workdir, "many", [(50, SECONDS[50]), (500, SECONDS[500]),
                                                           (2000, 6.0)], others=sim_cpu)
    finally:
        sim.terminate()
        sim.join(10)
    return report(runs, baseline, early_runs, many_runs, staged_runs, committed_runs, overload_runs,
                  floor_runs)


#: The bare relay's ladder after 500/s (bench/bare_relay.py): the platform's floor at and above 2,000/s.
FLOOR_RATES = (2000, 3000, 4000, 6000)

#: The partition count of the `kafka.partitions` comparison: the default before 2026-12-02 (each partition
#: a transaction touches costs the broker a commit marker and wakes its readers).
MANY_PARTITIONS = 6


#: What issue 16 changed in the defaults, set back for the baseline: two stages, commits every 100 ms.
BEFORE_DISPATCH: dict[str, Any] = {"commit_interval_ms": 100, "read_routed_uncommitted": False}
BEFORE_STREAMS: dict[str, Any] = {"commit_interval_ms": 100, "deployment": "staged"}
BEFORE_CLIENT: dict[str, Any] = {"answer_before_commit": False}


def report(runs: list[dict[str, Any]], baseline: list[dict[str, Any]],
           early: list[dict[str, Any]], many: list[dict[str, Any]] | None = None,
           staged: list[dict[str, Any]] | None = None,
           committed: list[dict[str, Any]] | None = None,
           overload: list[dict[str, Any]] | None = None,
           floor: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"model": MODEL, "simulator_ms": 0, "cache": False, "deployment": "fused",
                              "runs": runs, "baseline_before_runs": baseline, "early_routed_runs": early,
                              "partitions_6_runs": many or [], "staged_runs": staged or [],
                              "answer_after_commit_runs": committed or [], "overload_runs": overload or [],
                              "floor_runs": floor or []}
    under = [r["rate"] for r in runs if r["answered"] == r["sent"] and r["total"].get("p99", 1e9) < 100]
    for r in runs:
        rate = int(r["rate"])
        result[f"total_{rate}_p50_ms"] = r["total"].get("p50")
        result[f"total_{rate}_p99_ms"] = r["total"].get("p99")
    result["max_rate_p99_under_100ms"] = max(under) if under else 0
    for r in staged or []:
        result[f"staged_total_{int(r['rate'])}_p50_ms"] = r["total"].get("p50")
        result[f"staged_total_{int(r['rate'])}_p99_ms"] = r["total"].get("p99")
    for r in committed or []:
        result[f"answer_after_commit_total_{int(r['rate'])}_p50_ms"] = r["total"].get("p50")
        result[f"answer_after_commit_total_{int(r['rate'])}_p99_ms"] = r["total"].get("p99")
    _floor_keys(result, runs, floor or [])
    for b in baseline:
        result[f"baseline_total_{int(b['rate'])}_p50_ms"] = b["total"].get("p50")
        result[f"baseline_total_{int(b['rate'])}_p99_ms"] = b["total"].get("p99")
    table: list[tuple[str, str]] = []
    fmt = "{p50:.1f} / {p90:.1f} / {p99:.1f} / {max:.1f}"
    for r in [*[b | {"label": f"baseline (settings before issue 16) {b['rate']:,.0f}/s"} for b in baseline],
              *[r | {"label": f"defaults (fused) {r['rate']:,.0f}/s"} for r in runs],
              *[r | {"label": f"fused, client.answer_before_commit false {r['rate']:,.0f}/s"}
                for r in committed or []],
              *[r | {"label": f"staged {r['rate']:,.0f}/s"} for r in staged or []],
              *[r | {"label": f"floor: the bare exactly-once relay {r['rate']:,.0f}/s"} for r in floor or []],
              *[e | {"label": f"staged, read_routed_uncommitted {e['rate']:,.0f}/s"} for e in early],
              *[f | {"label": f"kafka.partitions {MANY_PARTITIONS} (the default before) {f['rate']:,.0f}/s"}
                for f in many or []]]:
        label = r.get("label") or f"{r['rate']:,.0f}/s"
        table.append((f"**{label}** answered", f"{r['answered']} of {r['sent']} (sent at "
                                                f"{r['achieved_send_rate']:,.0f}/s; load average "
                                                f"{r['load_before']:.1f} -> {r['load_after']:.1f})"))
        for hop in HOPS:
            if r[hop]:
                table.append((f"  {hop} p50 / p90 / p99 / max ms", fmt.format(**r[hop])))
        cpu = r.get("cpu_ms_per_request") or {}
        if cpu:
            names = [k for k in ("gateway", "streams_worker", "dispatcher", "broker", "simulator", "client",
                                 "observers") if k in cpu]
            table.append((f"  CPU per request: {' / '.join(n.replace('_', ' ') for n in names)}",
                          " / ".join(f"{cpu[k]:.2f} ms" for k in names)))
    table.append(("max paced rate with total p99 < 100 ms", f"{result['max_rate_p99_under_100ms']:,}/s"))
    table += _overload_rows(result, runs, overload or [])
    table.append(("goals", "500/s: p50 <= 10 ms, p99 <= 30 ms; 2,000/s: p99 <= 100 ms"))
    write_result("latency", result, table)
    for k, v in table:
        print(f"{k:<48} {v}")
    return result


def _floor_keys(result: dict[str, Any], runs: list[dict[str, Any]], floor: list[dict[str, Any]]) -> None:
    """The bare relay's figures and the gateway's against them: total p99 at each rate both ran, and the
    CPU per request of the gateway process and of the whole pipeline (gateway, broker, simulator, client,
    observers) over the relay's."""
    held = [r["rate"] for r in floor if r["answered"] == r["sent"] and r["total"].get("p99", 1e9) < 100]
    result["floor_max_rate_p99_under_100ms"] = max(held) if held else 0
    ours = {r["rate"]: r for r in runs}
    for r in floor:
        rate = int(r["rate"])
        result[f"floor_total_{rate}_p50_ms"] = r["total"].get("p50")
        result[f"floor_total_{rate}_p99_ms"] = r["total"].get("p99")
        if (run := ours.get(r["rate"])) is None:
            continue
        cpu, base = run.get("cpu_ms_per_request") or {}, r.get("cpu_ms_per_request") or {}
        if cpu.get("gateway") and base.get("gateway"):
            result[f"gateway_cpu_over_floor_{rate}"] = round(cpu["gateway"] / base["gateway"], 2)
        if sum(base.values()):
            result[f"pipeline_cpu_over_floor_{rate}"] = round(sum(cpu.values()) / sum(base.values()), 2)


def _overload_rows(result: dict[str, Any], runs: list[dict[str, Any]],
                   overload: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The overload comparison's keys (into `result`) and table rows: the same rate with and without
    deadlines."""
    rows: list[tuple[str, str]] = []
    without = next((r for r in runs if r["rate"] == OVERLOAD_RATE), None)
    for label, run in (("without deadlines", without), (f"deadline {OVERLOAD_DEADLINE_S:g} s",
                                                        overload[0] if overload else None)):
        if run is None:
            continue
        key = "overload_" + ("no_deadline" if run.get("deadline_s") is None else "deadline")
        ok = run["statuses"].get("ok", 0)
        p99 = run["ok_total"].get("p99")
        result[f"{key}_ok"] = ok
        result[f"{key}_ok_within_1s"] = run["ok_within_1s"]
        result[f"{key}_expired"] = run["statuses"].get("failed:deadline_exceeded", 0)
        result[f"{key}_unanswered"] = run["sent"] - run["answered"]
        result[f"{key}_ok_p99_ms"] = p99
        result[f"{key}_last_outcome_after_last_send_s"] = run["last_answer_after_last_send_s"]
        rows.append((f"**overload {OVERLOAD_RATE:,}/s, {label}**: answered ok (within 1 s), p50 / p99 "
                     "of those", f"{ok:,} ({run['ok_within_1s']:,}) of {run['sent']:,}, "
                     f"{run['ok_total'].get('p50', float('nan')):.0f} / "
                     f"{p99 if p99 is not None else float('nan'):.0f} ms; every outcome known "
                     f"{run['last_answer_after_last_send_s']} s after the last send; statuses "
                     f"{run['statuses']}"))
    return rows
