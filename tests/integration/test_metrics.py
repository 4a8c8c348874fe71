"""Every long-running component serves /metrics and /healthz, and the counters move with real work.

Each component runs as its own process against the real broker, on free metrics ports (the `settings`
fixture), and is scraped over HTTP exactly as Prometheus would.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from confluent_kafka import Producer

from apps.demo.processes import write_config
from gateway_consumer.simulator import SimulatorProcess
from schemas import make_codec
from shared.traffic import workload
from shared.traffic.telemetry import telemetry_events
from streamgate.client import RequestProducer
from streamgate.config import Settings
from streamgate.kafka.clients import producer_config
from tests.conftest import free_port
from tests.helpers.dispatch import DispatchRig, routed
from tests.helpers.scrape import Samples, has, health, total, wait_for

pytestmark = [pytest.mark.kafka]
LAG = "streamgate_consumer_lag"


class Procs:
    """`streamgate ...` child processes, stopped at the end of the test."""

    def __init__(self, config: Path, logs: Path) -> None:
        self.config, self.logs, self.procs = config, logs, list[subprocess.Popen[bytes]]()

    def start(self, name: str, *args: str) -> None:
        with open(self.logs / f"{name}.log", "ab") as log:
            self.procs.append(subprocess.Popen([str(Path(sys.executable).parent / "streamgate"), *args,
                                                "--config", str(self.config)], stdout=log,
                                               stderr=subprocess.STDOUT))

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def procs(settings: Settings, tmp_path: Path) -> Iterator[Procs]:
    group = Procs(write_config(settings, tmp_path / "streamgate.yaml"), tmp_path)
    try:
        yield group
    finally:
        group.stop()


def test_dispatcher_and_simulator_count_requests_errors_cache_and_breakers(
        settings: Settings, topics: dict[str, str], tmp_path: Path) -> None:
    rig = DispatchRig(settings, topics, tmp_path, free_port())
    breaker = rig.settings.dispatch.breaker.model_copy(update={"open_s": 120.0})  # stays open while scraped
    rig.settings = rig.settings.model_copy(update={"dispatch": rig.settings.dispatch.model_copy(
        update={"breaker": breaker})})
    rig.config = write_config(rig.settings, tmp_path / "dispatch.yaml")
    rig.simulator = SimulatorProcess(rig.simulator.port, tmp_path / "simulator.log", rig.config, seed=7)
    ports = settings.metrics.ports
    try:
        rig.simulator.start()
        rig.start_dispatcher()
        rig.simulator.set_profile("down", error_rate=1.0, median_ms=1, p99_ms=1)
        ok = [routed([{"model": "sim-small"}], f"question {i}") for i in range(20)]
        repeat = [routed([{"model": "sim-small"}], "question 0")]  # same prompt: an exact cache hit
        # one at a time, so the breaker sees each failure before the next request arrives
        falling = [routed([{"model": "down"}, {"model": "sim-small"}], f"fall {i}") for i in range(6)]
        for batch in [ok, repeat, *([e] for e in falling)]:
            rig.send(batch)
            rig.collect({e["request_id"] for e in batch}, linger_s=0)
        n = len(ok) + len(repeat) + len(falling)
        assert sum(len(r) for r in rig.responses.values()) == n
        # lag comes from librdkafka's statistics, every 5 s
        samples = wait_for(ports.dispatcher, lambda s: total(
            s, "streamgate_events_out_total", component="dispatcher", destination="responses") >= n
            and has(s, LAG), 30)
    finally:
        rig.close()
    c = {"component": "dispatcher"}
    assert total(samples, "streamgate_events_in_total", **c) == n
    assert total(samples, "streamgate_events_out_total", destination="responses", **c) == n
    attempts = sum(len(t) for t in rig.telemetry.values())
    assert total(samples, "streamgate_events_out_total", destination="telemetry", **c) == attempts
    assert total(samples, "streamgate_latency_seconds_count", **c) == n
    assert total(samples, "streamgate_latency_seconds_sum", **c) > 0
    assert total(samples, "streamgate_cache_lookups_total", result="hit_exact") == 1
    assert total(samples, "streamgate_cache_lookups_total") == n
    failed_calls = [a for t in rig.telemetry.values() for a in t if a["status"] != "ok"]
    assert len(failed_calls) == 4  # min_calls 4 at 50%: open after the 4th failure, then skipped
    assert total(samples, "streamgate_errors_total", stage="provider", **c) == len(failed_calls)
    assert total(samples, "streamgate_provider_latency_seconds_count", outcome="error") == len(failed_calls)
    assert total(samples, "streamgate_circuit_breaker_state", provider="sim", model="down") == 2  # open
    assert total(samples, "streamgate_circuit_breaker_state", provider="sim", model="sim-small") == 0
    assert total(samples, "streamgate_commits_total", **c) > 0
    lag = [(labels, v) for name, labels, v in samples if name == LAG and labels["component"] == "dispatcher"]
    assert {labels["topic"] for labels, _ in lag} == {topics["requests.routed"]}
    assert sum(v for _, v in lag) == 0  # every routed request consumed


def test_simulator_serves_metrics_and_health(settings: Settings, tmp_path: Path) -> None:
    config = write_config(settings, tmp_path / "sim.yaml")
    sim = SimulatorProcess(free_port(), tmp_path / "simulator.log", config, seed=3).start()
    port = settings.metrics.ports.simulator
    try:
        import httpx

        for i in range(5):
            httpx.post(f"{sim.url}/v1/chat/completions", timeout=10, json={
                "model": "sim-small", "messages": [{"role": "user", "content": f"hi {i}"}]})
        samples = wait_for(port, lambda s: total(s, "streamgate_events_in_total", component="simulator") >= 5)
        code, body = health(port)
    finally:
        sim.stop()
    assert total(samples, "streamgate_events_in_total", component="simulator") == 5
    assert total(samples, "streamgate_latency_seconds_count", component="simulator") == 5
    assert code == 200 and body["component"] == "simulator" and body["status"] == "ok"


def test_aggregator_and_sink_count_telemetry_and_report_lag(settings: Settings, topics: dict[str, str],
                                                            procs: Procs) -> None:
    codec = make_codec(topics["telemetry"], "Telemetry")
    producer = Producer(producer_config(settings, client_id="metrics-test", role="admin"))
    events = list(telemetry_events(3000, start_ms=int(time.time() * 1000) - 60_000, span_ms=60_000))
    for e in events:
        producer.produce(topics["telemetry"], codec.encode(e), e["request_id"].encode())
        producer.poll(0)
    producer.produce(topics["telemetry"], b"not avro", b"bad")
    producer.flush(30)
    procs.start("aggregator", "aggregate", "worker")
    procs.start("sink", "lakehouse", "sink")
    ports, n = settings.metrics.ports, len(events)

    def caught_up(component: str, name: str, **labels: str) -> Callable[[Samples], bool]:
        return lambda s: total(s, name, component=component, **labels) >= n and has(s, LAG)

    agg = wait_for(ports.aggregator, caught_up("aggregator", "streamgate_events_in_total"), 90)
    sink = wait_for(ports.lakehouse_sink, caught_up("lakehouse_sink", "streamgate_events_out_total",
                                                    destination="telemetry"), 90)
    a = partial(total, agg, component="aggregator")
    assert a("streamgate_events_in_total") == n
    assert a("streamgate_errors_total", kind="undecodable") == 1
    assert a("streamgate_events_out_total", destination="usage.aggregates") > 0
    assert a("streamgate_commits_total") >= 1 and a("streamgate_latency_seconds_count", stage="commit") >= 1
    # every telemetry partition it owns, read to the end (lag 0 once caught up)
    lag = [(labels, v) for name, labels, v in agg if name == LAG]
    assert {labels["topic"] for labels, _ in lag} == {topics["telemetry"]} and sum(v for _, v in lag) == 0
    b = partial(total, sink, component="lakehouse_sink")
    assert b("streamgate_events_out_total", destination="telemetry") == n
    assert b("streamgate_errors_total", kind="undecodable") == 1
    assert b("streamgate_events_in_total") >= n + 1
    assert b("streamgate_latency_seconds_count", stage="delta_write") >= 1
    for port, name in ((ports.aggregator, "aggregator"), (ports.lakehouse_sink, "lakehouse_sink")):
        code, body = health(port)
        assert code == 200 and body["component"] == name and body["last_progress_s_ago"] < 5


@pytest.mark.slow
def test_streams_worker_counts_its_batches(settings: Settings, topics: dict[str, str], procs: Procs,
                                           api_keys: dict[tuple[str, str], str]) -> None:
    procs.start("streams", "streams", "worker")
    requests = list(workload.requests(60, run_id="metrics", keys=api_keys))
    with RequestProducer(settings, client_id="metrics-test") as producer:
        for request in requests:
            producer.send(request)
        producer.flush()
    port = settings.metrics.ports.streams_worker
    c = {"component": "streams_worker", "stage": "request_path"}
    samples = wait_for(port, lambda s: total(s, "streamgate_events_in_total", **c) >= 60, 120)
    v = partial(total, samples, **c)
    assert v("streamgate_events_in_total") == 60
    routed = v("streamgate_events_out_total", destination="requests.routed")
    # every request is routed or dead-lettered with its reason, never both, never neither
    assert routed + v("streamgate_errors_total", kind="dead_letter") == 60 and routed > 0
    assert v("streamgate_events_out_total", destination="requests.guarded") == routed
    assert v("streamgate_latency_seconds_count") >= 1
    code, body = health(port)
    assert code == 200 and body["component"] == "streams_worker"
