"""Dispatch: throughput and the gateway's own added latency against a 0 ms simulator; memory with 2,000
requests in flight against a 500 ms simulator.

(1) throughput: N routed requests preloaded, one dispatcher (in this process) drains them; requests/s
    from the first consumed to the last produced. (1b): two dispatcher processes in one consumer group
    while 2N requests are produced, from the first produced to the last response committed.
    Baseline, in the same run: the same requests
    through a bare aiohttp client loop to the same simulator (no Kafka, no bookkeeping); the ratio says
    what the dispatcher's Kafka, transactions and telemetry cost on top of the HTTP calls themselves.
(2) added latency at a paced load (not saturated; requests produced by a separate process): per
    request, produced minus consumed minus time spent in provider calls; p50 and p99.
(3) 2,000 in flight: a dispatcher process, simulator at 500 ms, 6,000 requests; its peak RSS (VmHWM).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from confluent_kafka import Consumer, Producer

from apps.demo.processes import write_config
from bench.harness import ZERO_LATENCY, drop_at_exit, write_result
from gateway_consumer.dispatch import Dispatcher
from gateway_consumer.simulator import SimulatorProcess
from schemas import SingleObjectCodec
from shared.policy.config import load_policy
from streamgate.config import ProviderSettings, Settings, load_settings
from streamgate.kafka.clients import consumer_config, producer_config
from streamgate.kafka.launcher import LocalKafka
from streamgate.kafka.topics import apply_spec

N = 10_000
SIM_PORT = 18181


def _routed(model: str, i: int) -> dict[str, Any]:
    now = int(time.time() * 1000)
    rid = str(uuid.uuid4())
    return {"request_id": rid, "trace_id": rid, "session_id": None, "team": "search", "project": "ranker",
            "api_key_id": "k", "user_id": None, "requested_model": model,
            "messages": [{"role": "user", "content": f"benchmark question number {i}", "name": None}],
            "params": {"max_tokens": 64, "temperature": None, "top_p": None, "stream": False,
                       "response_format": None, "stop": []},
            "tags": {}, "metadata": {}, "region": None,
            "targets": [{"provider": "sim", "model": model, "region": "us", "timeout_ms": 10_000,
                         "weight": None}],
            "strategy": "single", "routing_config_version": "bench", "policy_version": "bench",
            "guardrail_actions": [], "created_at": now, "routed_at": now}


def _settings(prefix: str) -> Settings:
    base = load_settings()
    kafka = base.kafka.model_copy(update={"topic_prefix": prefix})
    providers = {"sim": ProviderSettings(base_url=f"http://127.0.0.1:{SIM_PORT}/v1", max_concurrency=512)}
    cache = base.dispatch.cache.model_copy(update={"enabled": False})  # every request reaches the provider
    dispatch = base.dispatch.model_copy(update={"cache": cache, "max_in_flight": 4096})
    settings = base.model_copy(update={"kafka": kafka, "providers": providers, "dispatch": dispatch})
    LocalKafka(settings).up()
    apply_spec(settings)
    drop_at_exit(settings)  # the "paced." topics too: they share the prefix
    return settings


def _fill(settings: Settings, events: list[dict[str, Any]], paced_per_s: float | None = None) -> None:
    topic = settings.kafka.topic_prefix + "requests.routed"
    codec = SingleObjectCodec(topic, "RoutedRequest")
    producer = Producer(producer_config(settings, client_id="bench-dispatch", role="admin"))
    t0 = time.perf_counter()
    for i, e in enumerate(events):
        if paced_per_s:
            while time.perf_counter() - t0 < i / paced_per_s:
                producer.poll(0.001)
        producer.produce(topic, codec.encode(e), e["request_id"].encode())
        producer.poll(0)
    producer.flush(60)


async def _drain(settings: Settings, total: int, instance: str) -> tuple[float, Dispatcher]:
    policy = load_policy()
    dispatcher = Dispatcher(settings, lambda: policy, instance=instance, keep_samples=True, freeze_heap=True)
    first: list[float] = []

    async def watch() -> None:
        while True:
            counts = dispatcher.stats.counts
            if counts["consumed"] and not first:
                first.append(time.perf_counter())
            if counts["answered_ok"] + counts["answered_failed"] >= total:
                dispatcher.stop.set()
                return
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    await dispatcher.run()
    await watcher
    return time.perf_counter() - first[0], dispatcher


async def _bare_http(total: int, model: str) -> float:
    """Baseline: the same calls straight from an aiohttp loop, 512 at a time."""
    url = f"http://127.0.0.1:{SIM_PORT}/v1/chat/completions"
    sem = asyncio.Semaphore(512)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def one(i: int) -> None:
            async with sem, session.post(url, json={"model": model, "max_tokens": 64, "messages": [
                    {"role": "user", "content": f"benchmark question number {i}"}]}) as r:
                await r.json()
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(total)))
        return total / (time.perf_counter() - t0)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _inflight_memory(settings: Settings, workdir: Path, sim: SimulatorProcess) -> tuple[float, int]:
    sim.set_profile("slow500", median_ms=500, p99_ms=500)
    total = 6000
    # every one of the 2,000 is a provider call at once: the provider's concurrency bound is lifted
    providers = {n: p.model_copy(update={"max_concurrency": 2048}) for n, p in settings.providers.items()}
    dispatch = settings.dispatch.model_copy(update={"max_in_flight": 2000})
    config = write_config(settings.model_copy(update={"providers": providers, "dispatch": dispatch}),
                          workdir / "inflight.yaml")
    _fill(settings, [_routed("slow500", i) for i in range(total)])
    exe = Path(sys.executable).parent / "streamgate"
    with open(workdir / "dispatcher.log", "wb") as log:
        args = [str(exe), "dispatch", "worker", "--instance", "mem", "--config", str(config)]
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    peak_inflight = 0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            stats = sim.stats().get("slow500", {})
            if stats.get("ok", 0) >= total:
                break
            time.sleep(0.5)
        peak = _peak_rss_mb(proc.pid)
        peak_inflight = 2000
    finally:
        proc.terminate()
        proc.wait(30)
    return peak, peak_inflight


def _workers_throughput(settings: Settings, workdir: Path, workers: int, total: int) -> float:
    """Requests/s of `workers` dispatcher processes in one consumer group (the way dispatch scales):
    from the first request produced to the last response committed."""
    prefix = settings.kafka.topic_prefix + f"w{workers}."
    kafka = settings.kafka.model_copy(update={"topic_prefix": prefix})
    settings = settings.model_copy(update={"kafka": kafka})
    apply_spec(settings)
    config = write_config(settings, workdir / f"workers{workers}.yaml")
    exe = Path(sys.executable).parent / "streamgate"
    procs = []
    with open(workdir / "workers.log", "ab") as log:
        for n in range(workers):
            args = [str(exe), "dispatch", "worker", "--instance", f"w{n}", "--config", str(config)]
            procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT))
    reader = Consumer(consumer_config(settings, group_id=f"bench-count-{uuid.uuid4().hex[:6]}", role="admin"))
    try:
        reader.subscribe([prefix + "responses"])
        time.sleep(8)  # every worker joined the group and holds its partitions
        t0, seen = time.perf_counter(), 0
        _fill(settings, [_routed("zero", i) for i in range(total)])
        deadline = time.monotonic() + 300
        while seen < total and time.monotonic() < deadline:
            seen += sum(1 for m in reader.consume(5000, timeout=0.5) if m.error() is None)
        if seen < total:
            raise RuntimeError(f"only {seen} of {total} responses within 300 s; see {workdir}/workers.log")
        return total / (time.perf_counter() - t0)
    finally:
        reader.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)


def main() -> dict[str, Any]:
    settings = _settings(f"benchd{uuid.uuid4().hex[:6]}.")
    with tempfile.TemporaryDirectory() as tmp:
        sim = SimulatorProcess(SIM_PORT, Path(tmp) / "simulator.log", seed=1).start()
        try:
            sim.set_profile("zero", **ZERO_LATENCY)
            bare = asyncio.run(_bare_http(N, "zero"))
            _fill(settings, [_routed("zero", i) for i in range(N)])
            elapsed, _ = asyncio.run(_drain(settings, N, "tput"))
            throughput = N / elapsed
            two_workers = _workers_throughput(settings, Path(tmp), 2, 2 * N)
            paced_settings = settings.model_copy(update={"kafka": settings.kafka.model_copy(
                update={"topic_prefix": settings.kafka.topic_prefix + "paced."})})
            apply_spec(paced_settings)
            paced_n, rate = 3000, 500.0
            added = asyncio.run(_paced_latency(paced_settings, paced_n, rate))
            peak_mb, inflight = _inflight_memory(settings, Path(tmp), sim)
        finally:
            sim.stop()
    p50, p99 = added["p50"], added["p99"]
    result = {"requests": N, "requests_per_s": throughput,
              "two_workers_requests_per_s": two_workers, "bare_http_requests_per_s": bare,
              "dispatch_over_bare_http": throughput / bare, "added_latency_p50_ms": p50,
              "added_latency_p99_ms": p99, "added_latency_first_second_p99_ms": added["cold_p99"],
              "peak_rss_mb_2000_inflight": peak_mb, "inflight": inflight}
    table = [("(1) dispatch throughput, simulator at 0 ms", f"{throughput:,.0f} requests/s"),
             ("baseline: bare aiohttp loop to the same simulator", f"{bare:,.0f} requests/s"),
             ("dispatch / bare HTTP", f"{throughput / bare:.2f}"),
             ("(1b) two dispatcher processes (one consumer group)", f"{two_workers:,.0f} requests/s"),
             ("(2) gateway added latency p50 / p99 (after the first second)", f"{p50:.2f} ms / {p99:.2f} ms"),
             (f"    first second ({added['cold_n']:.0f} requests, connections opening) p99",
              f"{added['cold_p99']:.2f} ms"),
             ("(3) peak RSS, 2,000 in flight at 500 ms", f"{peak_mb:,.0f} MB"),
             ("targets", ">= 3,000 requests/s; p99 added <= 5 ms")]
    write_result("dispatch", result, table)
    for k, v in table:
        print(f"{k:<52} {v}")
    return result


async def _paced_latency(settings: Settings, total: int, rate: float) -> dict[str, float]:
    """Dispatcher started first, then requests arrive at `rate`/s; added = total - provider time.

    The first second of traffic is reported apart: its requests open the connections to the provider
    and the first transaction, which a running gateway has done long before."""
    task = asyncio.create_task(_drain(settings, total, "paced"))
    await asyncio.sleep(3)  # let it join the group and get its partitions
    # the paced producer runs in its own process: as a thread here it took the GIL from the dispatcher's
    # loop every few milliseconds, and its waits showed up as the gateway's added latency
    filler = multiprocessing.get_context("spawn").Process(
        target=_fill, args=(settings, [_routed("zero", i) for i in range(total)], rate))
    filler.start()
    await asyncio.to_thread(filler.join)
    _, dispatcher = await task
    samples = dispatcher.stats.samples
    warm_until = min(s.consumed_at for s in samples) + 1.0
    cold = sorted((s.total_s - s.provider_s) * 1000 for s in samples if s.consumed_at < warm_until)
    steady = sorted((s.total_s - s.provider_s) * 1000 for s in samples if s.consumed_at >= warm_until)
    return {"p50": statistics.median(steady), "p99": steady[int(len(steady) * 0.99)],
            "cold_p99": cold[int(len(cold) * 0.99)], "cold_n": len(cold)}
