"""kill -9 of the request path and of the dispatcher mid-stream while the dispatcher reads routed requests
before the request path's transactions commit (`dispatch.read_routed_uncommitted`, docs/benchmarks.md):
no request gets two answers, and no provider cost is counted twice.

What this mode makes visible early is the request path's decision: a worker killed mid-transaction has
routed requests the dispatcher may already have answered; its successor decides them again (the claims
died with the transaction) and the dispatcher drops the second routing as a duplicate by request id. The
answers themselves stay transactional, so a reader of `responses` (`reply_consumer_config`,
read_committed) must see each request answered once, and the telemetry (read_committed) must hold one
attempt chain per request whose cost is the cost its answer carries.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer

from apps.demo.processes import Components
from gateway_consumer.simulator import SimulatorProcess
from schemas import make_codec
from shared.traffic import workload
from streamgate.client import RequestProducer
from streamgate.config import ProviderSettings, Settings
from streamgate.kafka.clients import reply_consumer_config
from tests.conftest import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
N = 4000


def _early(settings: Settings, tmp_path: Path, sim_port: int) -> Settings:
    """Every provider at the simulator (fast and reliable here: the kills are the faults), early routed."""
    url = f"http://127.0.0.1:{sim_port}/v1"
    providers = {name: ProviderSettings(kind=p.kind, base_url=url) for name, p in settings.providers.items()}
    cache = settings.dispatch.cache  # the semantic cache's embedder only costs CPU here
    cache = cache.model_copy(update={"semantic": cache.semantic.model_copy(update={"enabled": False})})
    dispatch = settings.dispatch.model_copy(update={"read_routed_uncommitted": True, "cache": cache})
    return settings.model_copy(update={"state_dir": tmp_path, "providers": providers, "dispatch": dispatch})


def _read(settings: Settings, topic: str, schema: str, until: set[str],
          timeout_s: float) -> list[dict[str, Any]]:
    """Every committed record of `topic` (read_committed, as `reply_consumer_config` reads), until each
    id in `until` was seen and then 5 s of quiet for late duplicates."""
    consumer = Consumer(reply_consumer_config(settings, group_id=f"early-{uuid.uuid4().hex[:6]}")
                        | {"auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    codec = make_codec(topic, schema)
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    deadline, quiet_until = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        for m in consumer.consume(1000, timeout=0.5):
            if m.error() is None:
                record = codec.decode(m.value() or b"")
                records.append(record)
                seen.add(record["request_id"])
        if until <= seen:
            quiet_until = quiet_until or time.monotonic() + 5
            if time.monotonic() > quiet_until:
                break
    consumer.close()
    return records


def test_kill_9_of_both_stages_with_early_routed_answers_once_and_counts_cost_once(
        settings: Settings, topics: dict[str, str], tmp_path: Path) -> None:
    sim_port = free_port()
    simulator = SimulatorProcess(sim_port, tmp_path / "simulator.log", seed=3).start()
    for model in ("gpt-4o-mini", "gpt-4o", "claude-3-5-haiku-latest", "claude-3-5-sonnet-latest",
                  "sim-small", "sim-large", "meta-llama/Llama-3-70b-chat-hf"):
        simulator.set_profile(model, median_ms=2, p99_ms=20, error_rate=0, rate_limit_rate=0, hang_rate=0)
    early = _early(settings, tmp_path, sim_port)
    sent = list(workload.requests(N, seed=16))
    kills: Counter[str] = Counter()
    try:
        with Components(early) as components:
            worker = components.start("streams-worker", "streams", "worker")
            dispatcher = components.start("dispatcher", "dispatch", "worker")
            with RequestProducer(early) as producer:
                for n, r in enumerate(sent, 1):  # a steady stream, so each kill lands mid-stream
                    producer.send(r)
                    if n % 250 == 0:
                        producer.flush()
                        time.sleep(0.15)  # both stages are busy with these now
                    if n % 1000 == 500:  # between two of its commits, decisions already dispatched
                        os.kill(worker.pid, signal.SIGKILL)
                        worker.wait(10)
                        kills["streams"] += 1
                        worker = components.start("streams-worker", "streams", "worker")
                    if n % 1000 == 0 and n < N:  # answers produced, not yet committed
                        os.kill(dispatcher.pid, signal.SIGKILL)
                        dispatcher.wait(10)
                        kills["dispatcher"] += 1
                        dispatcher = components.start("dispatcher", "dispatch", "worker")
            ids = {r.request_id for r in sent}
            answers = _read(early, topics["responses"], "Response", ids, timeout_s=300)
            telemetry = _read(early, topics["telemetry"], "Telemetry", set(), timeout_s=20)
    finally:
        simulator.stop()
    counts = Counter(a["request_id"] for a in answers)
    assert set(counts) == ids, f"{len(ids - set(counts))} requests without an answer"
    twice = [rid for rid, n in counts.items() if n > 1]
    assert not twice, f"{len(twice)} of {N} requests answered twice (read_committed) after kill -9"
    # cost: each request's telemetry is one attempt chain (attempt numbers unique), and its cost is the
    # cost its one answer carries; a second dispatch of a request would add a second chain
    attempts: dict[str, Counter[int]] = defaultdict(Counter)
    cost: Counter[str] = Counter()
    for event in telemetry:
        attempts[event["request_id"]][event["attempt"]] += 1
        cost[event["request_id"]] += event["cost_nanousd"]
    repeated = [rid for rid, numbers in attempts.items() if max(numbers.values()) > 1]
    assert not repeated, f"{len(repeated)} requests with an attempt counted twice in telemetry"
    by_answer = {a["request_id"]: a["cost_nanousd"] for a in answers}
    wrong = [rid for rid in by_answer if by_answer[rid] != cost.get(rid, 0)]
    assert not wrong, f"{len(wrong)} answers whose cost differs from their telemetry ({wrong[:3]})"
    ok = sum(1 for a in answers if a["status"] == "ok")
    assert ok > N // 2 and kills["streams"] >= 3 and kills["dispatcher"] >= 3
    print(f"early routed, {kills['streams']} + {kills['dispatcher']} kills: {N} answered once, "
          f"{ok} ok, {sum(cost.values()):,} nano-USD in {len(telemetry)} attempts")
