"""The broker's CPU per operation on the local broker: a transaction (one record, commit) against a plain
idempotent produce of the same record (the baseline, same run), and per transaction as it touches more
partitions (each needs a marker) or adds consumer offsets (what the request path and the dispatcher
commit). Also the broker's idle CPU per second with nobody connected.

Then back-to-back transactions with offsets (a stage under load: each begins as the previous commit
returns) with librdkafka's default retry backoff against the stages' (`TXN_RETRY_BACKOFF`): the
coordinator refuses a transaction's first requests while the previous one's markers are being written,
and the client's wait before retrying is then the transaction's latency.

Why: both exactly-once stages commit a transaction per batch, and at low rates a batch is one request,
so the broker's cost per transaction, not per record, is what a request costs the broker there
(docs/benchmarks.md, latency; docs/scaling.md uses these figures). CPU time of the broker process from
/proc, so a loaded machine changes the figures less than it changes throughput.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from bench.harness import bench_settings, write_result
from schemas.topics import Topic, physical_name
from streamgate.config import Settings
from streamgate.kafka.clients import TXN_RETRY_BACKOFF, consumer_config, producer_config

OPS = 400
PAYLOAD = b"x" * 1024


def broker_pid(settings: Settings) -> int:
    """The local broker's JVM (`streamgate kafka up` writes its pid next to its data)."""
    pid_file = settings.resolve(settings.kafka.local.data_dir).parent / "kafka-broker" / "broker.pid"
    if pid_file.exists():
        return int(pid_file.read_text().strip())
    found = subprocess.run(["pgrep", "-f", "^/usr/bin/java.*kafka.Kafka"], capture_output=True, text=True,
                           check=False)
    return int(found.stdout.split()[0])


def _cpu_s(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115 - one short read
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(pid: int, op: Callable[[int], None], n: int = OPS) -> dict[str, float]:
    """Broker CPU ms and wall ms per call of `op` (after 20 warm-up calls)."""
    for i in range(20):
        op(i)
    cpu0, t0 = _cpu_s(pid), time.perf_counter()
    for i in range(n):
        op(i)
    cpu, wall = _cpu_s(pid) - cpu0, time.perf_counter() - t0
    return {"broker_cpu_ms": round(cpu * 1000 / n, 3), "wall_ms": round(wall * 1000 / n, 3)}


def _q(values: list[float], f: float) -> float:
    return round(values[int(len(values) * f)], 1)


def _back_to_back(settings: Settings, consumer: Consumer, extra: dict[str, Any]) -> dict[str, float]:
    """p50/p90 ms of send_offsets_to_transaction and of the whole transaction, commits back to back."""
    topic = physical_name(Topic.ROUTED, settings.kafka.topic_prefix)
    source = physical_name(Topic.REQUESTS, settings.kafka.topic_prefix)
    p = Producer(producer_config(settings, client_id="bench-broker-cost", role="admin") | extra | {
        "transactional.id": f"{settings.kafka.topic_prefix}bench-b2b-{uuid.uuid4().hex[:6]}"})
    p.init_transactions(30)
    group = consumer.consumer_group_metadata()
    offsets, whole = [], []
    for i in range(OPS // 2):
        began = time.perf_counter()
        p.begin_transaction()
        p.produce(topic, PAYLOAD, partition=0)
        t = time.perf_counter()
        p.send_offsets_to_transaction([TopicPartition(source, 0, i)], group, 30)
        offsets.append((time.perf_counter() - t) * 1000)
        p.commit_transaction(30)
        whole.append((time.perf_counter() - began) * 1000)
    offsets, whole = sorted(offsets[10:]), sorted(whole[10:])
    return {"send_offsets_p50_ms": _q(offsets, 0.5), "send_offsets_p90_ms": _q(offsets, 0.9),
            "txn_p50_ms": _q(whole, 0.5), "txn_p90_ms": _q(whole, 0.9), "txn_p99_ms": _q(whole, 0.99)}


def _table(result: dict[str, Any]) -> list[tuple[str, str]]:
    runs, backoff = result["runs"], result["back_to_back"]
    table = [(f"{name.replace('_', ' ')}: broker CPU / wall per op",
              f"{run['broker_cpu_ms']:.2f} ms / {run['wall_ms']:.2f} ms "
              f"({result[f'{name}_vs_plain']}x a plain produce)") for name, run in runs.items()]
    for name, b in backoff.items():
        table.append((f"back-to-back transactions with offsets, retry backoff {name.replace('_', ' ')}: "
                      "send_offsets p50 / p90; whole transaction p50 / p90 / p99",
                      f"{b['send_offsets_p50_ms']} / {b['send_offsets_p90_ms']} ms; {b['txn_p50_ms']} / "
                      f"{b['txn_p90_ms']} / {b['txn_p99_ms']} ms"))
    table += [("broker idle CPU (nobody connected but this bench)",
               f"{result['broker_idle_cpu_ms_per_s']:.0f} ms/s"),
              ("machine load average (1 min) at the end", f"{result['load_average']:.1f} on 2 cores")]
    return table


def main() -> dict[str, Any]:
    settings = bench_settings()
    pid = broker_pid(settings)
    topic = physical_name(Topic.ROUTED, settings.kafka.topic_prefix)
    source = physical_name(Topic.REQUESTS, settings.kafka.topic_prefix)
    group = settings.kafka.topic_prefix + "bench-broker-cost"
    plain = Producer(producer_config(settings, client_id="bench-broker-cost", role="admin"))
    txn = Producer(producer_config(settings, client_id="bench-broker-cost", role="admin") | {
        "transactional.id": f"{group}-{uuid.uuid4().hex[:6]}"})
    txn.init_transactions(30)
    consumer = Consumer(consumer_config(settings, group_id=group, role="admin"))
    consumer.assign([TopicPartition(source, 0, 0)])  # group metadata for send_offsets_to_transaction

    def produce(i: int) -> None:
        plain.produce(topic, PAYLOAD, partition=i % 6)
        plain.flush(30)

    def transaction(partitions: int, offsets: bool) -> Callable[[int], None]:
        def op(i: int) -> None:
            txn.begin_transaction()
            for p in range(partitions):
                txn.produce(topic, PAYLOAD, partition=(i + p) % 6)
            if offsets:
                txn.send_offsets_to_transaction([TopicPartition(source, 0, i)],
                                                consumer.consumer_group_metadata(), 30)
            txn.commit_transaction(30)
        return op

    idle0, t0 = _cpu_s(pid), time.perf_counter()
    time.sleep(5)
    idle_ms_per_s = (_cpu_s(pid) - idle0) * 1000 / (time.perf_counter() - t0)
    runs = {"plain_produce": _measure(pid, produce),
            "txn_1_partition": _measure(pid, transaction(1, False)),
            "txn_1_partition_offsets": _measure(pid, transaction(1, True)),
            # the request path since positions moved to its changelog: an output and a position record
            "txn_2_partitions": _measure(pid, transaction(2, False)),
            "txn_6_partitions_offsets": _measure(pid, transaction(6, True))}
    backoff = {name: _back_to_back(settings, consumer, extra)
               for name, extra in (("librdkafka_default", {}), ("stages", TXN_RETRY_BACKOFF))}
    consumer.close()
    base = runs["plain_produce"]["broker_cpu_ms"]
    result: dict[str, Any] = {"ops": OPS, "payload_bytes": len(PAYLOAD), "runs": runs,
                              "back_to_back": backoff, "broker_idle_cpu_ms_per_s": round(idle_ms_per_s, 1),
                              "load_average": os.getloadavg()[0]}
    for name, run in runs.items():
        result[f"{name}_broker_cpu_ms"] = run["broker_cpu_ms"]
        result[f"{name}_vs_plain"] = round(run["broker_cpu_ms"] / base, 1) if base else None
    table = _table(result)
    write_result("broker-cost", result, table)
    print("\n".join(f"{k}: {v}" for k, v in table))
    return result


if __name__ == "__main__":
    main()
