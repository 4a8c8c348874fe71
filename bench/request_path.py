"""Request-path throughput: (a) the stage logic alone, (b) the full path through Kafka (the default
transactions engine; also with 2 workers, and 1 worker on the faust engine), (c) a raw confluent-kafka
consume->produce passthrough of the same events. Ratios b/a and b/c.

Authentication (issue 17) is on in (a) and (b), as deployed; its overhead is the ratio to the same
measure with it off, in the same run: (a0) the logic without a key ring, (b0) one worker with
`identity.enforce: false`.

Events: the demo workload with ~1 KB prompts, ~10% carrying PII.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from apps.demo.processes import write_config
from bench.harness import bench_settings, write_result
from schemas import SingleObjectCodec
from schemas.topics import Topic
from shared.identity import KeyRecord, KeyRing, generate_key
from shared.policy.config import load_policy
from shared.policy.holder import PolicyHolder
from shared.traffic import workload
from streamgate.client import ChatMessage
from streamgate.config import Settings
from streamgate.kafka.clients import consumer_config, producer_config
from streams.io import StageIO
from streams.pipeline import RequestPath, RequestPathDeps, check_claim

N = 20_000
FILLER = "The gateway routes requests across providers while tracking cost and latency. "


def _events(n: int, keys: workload.WorkloadKeys | None = None) -> list[dict[str, Any]]:
    """Demo workload with every prompt padded to ~1 KB; PII stays in ~10% (the workload's own rate).
    `keys`: real keys for the workload's teams (the same events otherwise)."""
    out = []
    for r in workload.requests(n, seed=21, run_id=uuid.uuid4().hex[:8], keys=keys):
        text = r.messages[-1].content
        padded = (text + " " + FILLER * 14)[:1024]
        out.append(r.model_copy(update={"messages": [ChatMessage(role="user", content=padded)]}).to_event())
    return out


def memory_keys() -> tuple[KeyRing, dict[tuple[str, str], str]]:
    """A key ring holding one key per team and project of the workload, without Kafka."""
    ring = KeyRing(b"bench-secret-" * 4)
    keys = {}
    for team in workload.TEAMS:
        for project in team.projects:
            key_id, raw = generate_key()
            ring.apply(KeyRecord(id=key_id, hmac=ring.stored_hmac(raw), team=team.team, project=project,
                                 status="active", created_at=0, created_by="bench", updated_at=0))
            keys[(team.team, project)] = raw
    return ring, keys


def logic_rate(events: list[dict[str, Any]], ring: KeyRing | None = None) -> tuple[float, float]:
    """The worker's own per-record function with in-memory dedup claims: everything but Kafka and faust;
    with `ring`, every request authenticated against it. Returns events/s and CPU microseconds per event."""
    from streamgate.config import load_settings

    io = StageIO(load_settings())
    encoded = io.codecs[Topic.REQUESTS].encode_many(events)
    holder = PolicyHolder(load_policy())
    path = RequestPath(io, RequestPathDeps(policy=holder, rng=random.Random(1), keys=ring))
    claims: dict[bytes, list[int]] = {}
    window_ms = holder.policy.validation.dedup_window_s * 1000

    def duplicate(request_id: bytes, partition: int, offset: int, now_ms: int) -> bool:
        dup, new = check_claim(claims.get(request_id), offset, now_ms, window_ms)
        if new is not None:
            claims[request_id] = new
        return dup

    t0, cpu0 = time.perf_counter(), time.process_time()
    for offset, value in enumerate(encoded):
        path.process(value, str(offset).encode(), 0, offset, duplicate, int(time.time() * 1000))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return len(encoded) / elapsed, cpu * 1e6 / len(encoded)


def _settings() -> Settings:
    settings: Settings = bench_settings()
    return settings


def _fill(settings: Settings, topic: str, values: list[bytes]) -> None:
    producer = Producer(producer_config(settings, client_id="bench-fill", role="admin"))
    for i, v in enumerate(values):
        while True:
            try:
                producer.produce(topic, value=v, key=str(i).encode())
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)


def _count(settings: Settings, topics: list[str]) -> int:
    c = Consumer(consumer_config(settings, group_id="bench-count", role="admin"))
    try:
        for attempt in range(10):
            try:
                total = 0
                for t in topics:
                    for p in c.list_topics(t, timeout=10).topics[t].partitions:
                        low, high = c.get_watermark_offsets(TopicPartition(t, p), timeout=10)
                        total += high - low
                return total
            except KafkaException:  # a new topic's leader is still being elected
                if attempt == 9:
                    raise
                time.sleep(0.5)
        raise AssertionError("unreachable")
    finally:
        c.close()


def _wait_for_group(settings: Settings, group: str, members: int, timeout_s: float = 120) -> None:
    from confluent_kafka import ConsumerGroupState

    from streamgate.kafka.clients import admin_client

    admin = admin_client(settings)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            found = admin.describe_consumer_groups([group])[group].result(timeout=10)
            if found.state == ConsumerGroupState.STABLE and len(found.members) == members:
                return
        except KafkaException:
            pass  # the group does not exist yet
        time.sleep(0.5)
    raise TimeoutError(f"consumer group {group} never had {members} stable member(s)")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process: per-event CPU holds up on a shared machine, events/s not."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def passthrough_rate(settings: Settings, values: list[bytes]) -> float:
    src, dst = settings.kafka.topic_prefix + "requests.guarded", settings.kafka.topic_prefix + "audit"
    _fill(settings, src, values)
    consumer = Consumer(consumer_config(settings, group_id="bench-pass", role="admin"))
    consumer.subscribe([src])
    producer = Producer(producer_config(settings, client_id="bench-pass", role="admin"))
    seen, t0 = 0, 0.0
    while seen < len(values):
        for m in consumer.consume(1000, timeout=1.0):
            if m.error() is None:
                if not seen:
                    t0 = time.perf_counter()
                producer.produce(dst, value=m.value(), key=m.key())
                seen += 1
        producer.poll(0)
        consumer.commit(asynchronous=True)
    producer.flush(60)
    elapsed = time.perf_counter() - t0
    consumer.close()
    return len(values) / elapsed


def pipeline_rate(settings: Settings, workdir: Path, workers: int = 1, engine: str = "transactions",
                  authenticate: bool = True) -> tuple[float, float]:
    """Events/s through `workers` worker processes (one consumer group), and their CPU us per event.
    With `authenticate`, real keys are issued on the keys topic first and every event carries one."""
    prefix = settings.kafka.topic_prefix
    workdir.mkdir(parents=True, exist_ok=True)
    settings = settings.with_state_dir(workdir).model_copy(update={
        "identity": settings.identity.model_copy(update={"enforce": authenticate})})
    keys = workload.provision_keys(settings, actor="bench") if authenticate else None
    values = SingleObjectCodec("requests", "Request").encode_many(_events(N, keys))
    config = write_config(settings, workdir / "bench.yaml")
    exe = Path(sys.executable).parent / "streamgate"
    outcomes = [prefix + "requests.routed", prefix + "requests.rejected"]  # the request path's outcomes
    procs = []
    for i in range(workers):
        with open(workdir / f"worker-{i}.log", "wb") as log:
            args = [str(exe), "streams", "worker", "--config", str(config), "--engine", engine,
                    "--instance", str(i), "--metrics-port", "0"]
            procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT))
    try:
        # fill once every worker holds its partitions, so a rebalance is not what gets measured
        _wait_for_group(settings, f"{prefix}streamgate-request-path", workers)
        _fill(settings, prefix + "requests", values)
        started, deadline = None, time.monotonic() + 600
        while True:
            done = _count(settings, outcomes)
            if done and started is None:
                started, first, cpu0 = time.perf_counter(), done, sum(_cpu_seconds(p.pid) for p in procs)
            if done >= len(values) - 10 or any(p.poll() is not None for p in procs):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {done} of {len(values)} outcomes after 600 s; see {workdir}")
            time.sleep(0.2)
        assert started is not None, "the worker produced nothing"
        assert done > first, "the workers stopped"
        cpu = sum(_cpu_seconds(p.pid) for p in procs) - cpu0
        return (done - first) / (time.perf_counter() - started), cpu * 1e6 / (done - first)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)


def _median_run(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The run with the median events/s (and its CPU per event): the machine is shared, so one run can
    land on a busy moment."""
    return sorted(runs)[len(runs) // 2]


def main(repeats: int = 3) -> dict[str, Any]:
    import tempfile

    ring, keys = memory_keys()
    events, plain = _events(N, keys), _events(N)
    values = SingleObjectCodec("requests", "Request").encode_many(events)
    logic_runs, plain_runs = [], []
    for i in range(2 * repeats + 1):  # interleaved, alternating order: both see the same moments of a
        for auth in ((True, False) if i % 2 else (False, True)):  # shared machine; cheap, so more runs
            if auth:
                logic_runs.append(logic_rate(events, ring))
            else:
                plain_runs.append(logic_rate(plain))
    passthrough = passthrough_rate(_settings(), values)
    setups = {"transactions_1": ("transactions", 1, True),
              "transactions_1_noauth": ("transactions", 1, False),
              "transactions_2": ("transactions", 2, True), "faust_1": ("faust", 1, True)}
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in setups}
    for _ in range(repeats):
        for name, (engine, workers, auth) in setups.items():
            with tempfile.TemporaryDirectory() as tmp:  # fresh topics and group: the same events again
                run = pipeline_rate(_settings(), Path(tmp), workers=workers, engine=engine, authenticate=auth)
                runs[name].append(run)
    logic, logic_cpu = _median_run(logic_runs)
    logic0, logic0_cpu = _median_run(plain_runs)
    # CPU per event is what authentication adds; events/s of one run swing with the machine's load
    auth_cpu = statistics.median(c for _, c in logic_runs) / statistics.median(c for _, c in plain_runs)
    pipeline, pipeline_cpu = _median_run(runs["transactions_1"])
    pipeline0, pipeline0_cpu = _median_run(runs["transactions_1_noauth"])
    pipeline2, (faust, faust_cpu) = _median_run(runs["transactions_2"])[0], _median_run(runs["faust_1"])
    result = {"events": N, "repeats": repeats, "engine": "transactions",
              "logic_events_per_s": logic, "pipeline_events_per_s": pipeline,
              "pipeline_2_workers_events_per_s": pipeline2, "faust_pipeline_events_per_s": faust,
              "passthrough_events_per_s": passthrough, "pipeline_over_logic": pipeline / logic,
              "pipeline_over_passthrough": pipeline / passthrough,
              "logic_cpu_us_per_event": logic_cpu, "worker_cpu_us_per_event": pipeline_cpu,
              "faust_worker_cpu_us_per_event": faust_cpu,
              "authentication": {
                  "logic_no_auth_events_per_s": logic0, "pipeline_no_auth_events_per_s": pipeline0,
                  "logic_auth_over_no_auth": logic / logic0,
                  "logic_cpu_auth_over_no_auth": auth_cpu,
                  "pipeline_auth_over_no_auth": pipeline / pipeline0,
                  "logic_cpu_us_per_event_no_auth": logic0_cpu,
                  "worker_cpu_us_per_event_no_auth": pipeline0_cpu},
              "runs_events_per_s": {"logic": [r for r, _ in logic_runs],
                                    "logic_no_auth": [r for r, _ in plain_runs],
                                    **{name: [r for r, _ in rs] for name, rs in runs.items()}},
              "mean_event_bytes": sum(map(len, values)) / len(values)}
    table = [("(a) stage logic alone, in memory", f"{logic:,.0f} events/s"),
             ("(b) full path through Kafka (1 worker, transactions engine)", f"{pipeline:,.0f} events/s"),
             ("(b2) the same with 2 worker processes", f"{pipeline2:,.0f} events/s"),
             ("(b3) 1 worker on the faust engine (at-least-once)", f"{faust:,.0f} events/s"),
             ("(c) raw confluent-kafka consume->produce", f"{passthrough:,.0f} events/s"),
             ("b/a", f"{pipeline / logic:.2f}"), ("b/c", f"{pipeline / passthrough:.2f}"),
             ("CPU per event: logic / worker / faust worker",
              f"{logic_cpu:.0f} us / {pipeline_cpu:.0f} us / {faust_cpu:.0f} us"),
             ("(a0) stage logic without authentication", f"{logic0:,.0f} events/s"),
             ("(b0) full path, 1 worker, `identity.enforce: false`", f"{pipeline0:,.0f} events/s"),
             ("authentication: a/a0, b/b0 (events/s)", f"{logic / logic0:.3f}, {pipeline / pipeline0:.3f}"),
             ("authentication: logic CPU per event with / without (median of runs)", f"{auth_cpu:.3f}"),
             ("CPU per event with / without authentication: logic, worker",
              f"{logic_cpu:.1f} / {logic0_cpu:.1f} us, {pipeline_cpu:.0f} / {pipeline0_cpu:.0f} us"),
             ("runs (median shown)", f"{repeats} of each"),
             ("mean event size", f"{result['mean_event_bytes']:.0f} bytes")]
    write_result("request-path", result, table)
    for k, v in table:
        print(f"{k:<60} {v}")
    return result
