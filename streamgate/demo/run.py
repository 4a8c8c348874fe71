"""`streamgate demo`: the whole system, as far as it exists, on embedded defaults.

Stages join this run as they land. Today: a real broker, topics from the spec, a few thousand
requests produced through the service client, a handful of corrupt records, and a reader that decodes
everything back, turns each corrupt record into a dead letter and accounts for every offset.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from confluent_kafka import Consumer, Producer, TopicPartition
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from schemas import EventDecodeError, dead_letter_from_error, make_codec
from schemas.topics import Topic, load_topic_specs, physical_name
from streamgate.client import RequestProducer
from streamgate.config import Settings
from streamgate.demo import workload
from streamgate.kafka.clients import consumer_config, producer_config
from streamgate.kafka.launcher import LocalKafka
from streamgate.kafka.topics import apply_topics

#: Bytes no producer should ever send: empty, not Avro, an unknown fingerprint, a truncated header.
CORRUPT_RECORDS = (b"", b"not avro at all", b"\xc3\x01\x00\x01\x02\x03\x04\x05\x06\x07garbage",
                   b"\xc3\x01\x12")


@dataclass
class DemoResult:
    produced: int = 0
    consumed: int = 0
    dead_lettered: int = 0
    produce_s: float = 0.0
    consume_s: float = 0.0
    by_team: Counter[str] = field(default_factory=Counter)
    by_model: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console)


def _high_watermarks(consumer: Consumer, topic: str) -> list[TopicPartition]:
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    marks = []
    for p in sorted(partitions):
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        marks.append(TopicPartition(topic, p, high))
    return marks


def _start_infrastructure(settings: Settings, console: Console) -> None:
    started = time.perf_counter()
    status = LocalKafka(settings).up()
    console.print(f"[bold]kafka[/] {status.message} ({time.perf_counter() - started:.1f} s)")
    report = apply_topics(settings.kafka.bootstrap(), load_topic_specs(), prefix=settings.kafka.topic_prefix)
    console.print(f"[bold]topics[/] {report.summary()}")


def _produce_workload(settings: Settings, count: int, run_id: str, result: DemoResult,
                      progress: Progress) -> None:
    task = progress.add_task("producing requests", total=count)
    t0 = time.perf_counter()
    with RequestProducer(settings, client_id="demo") as producer:
        for n, request in enumerate(workload.requests(count, run_id=run_id), 1):
            producer.send(request)
            result.by_team[request.team] += 1
            result.by_model[request.model] += 1
            if n % 500 == 0:
                progress.update(task, completed=n)
        producer.flush()
    result.produced = count
    result.produce_s = time.perf_counter() - t0
    progress.update(task, completed=count)
    raw = Producer(producer_config(settings, client_id="demo-corrupt"))
    for bad in CORRUPT_RECORDS:
        raw.produce(physical_name(Topic.REQUESTS, settings.kafka.topic_prefix), value=bad, key=b"corrupt")
    raw.flush(10)


def _read_back(settings: Settings, reader: Consumer, expected: int, result: DemoResult,
               progress: Progress) -> int:
    """Decode every record from the start offsets; each undecodable one becomes a dead letter."""
    prefix, registry = settings.kafka.topic_prefix, settings.schema_registry.url
    requests_topic, dlq_topic = physical_name(Topic.REQUESTS, prefix), physical_name(Topic.DEADLETTER, prefix)
    codec = make_codec(requests_topic, "Request", registry)
    dlq_codec = make_codec(dlq_topic, "DeadLetter", registry)
    dlq = Producer(producer_config(settings, client_id="demo-dlq"))
    task = progress.add_task("reading them back", total=expected)
    seen = 0
    t0 = time.perf_counter()
    deadline = time.monotonic() + 120
    while seen < expected and time.monotonic() < deadline:
        for msg in reader.consume(num_messages=1000, timeout=1.0):
            if msg.error():
                continue
            seen += 1
            try:
                codec.decode(msg.value() or b"", partition=msg.partition() or 0, offset=msg.offset() or 0)
                result.consumed += 1
            except EventDecodeError as err:
                letter = dead_letter_from_error(err, raw_value=msg.value() or b"", raw_key=msg.key(),
                                                stage="demo-reader")
                dlq.produce(dlq_topic, value=dlq_codec.encode(letter), key=msg.key())
                result.dead_lettered += 1
                result.reasons[err.reason_code] += 1
        progress.update(task, completed=seen)
    dlq.flush(10)
    result.consume_s = time.perf_counter() - t0
    return seen


def run_demo(settings: Settings, *, requests: int = 5000, console: Console | None = None) -> DemoResult:
    console = console or Console()
    result = DemoResult()
    _start_infrastructure(settings, console)
    run_id = uuid.uuid4().hex[:8]
    reader = Consumer(consumer_config(settings, group_id=f"demo-{run_id}"))
    reader.assign(_high_watermarks(reader, physical_name(Topic.REQUESTS, settings.kafka.topic_prefix)))
    expected = requests + len(CORRUPT_RECORDS)
    try:
        with _progress(console) as progress:
            _produce_workload(settings, requests, run_id, result, progress)
            seen = _read_back(settings, reader, expected, result, progress)
    finally:
        reader.close()
    _print_summary(console, result, settings)
    if seen < expected:
        raise RuntimeError(f"only {seen} of {expected} records came back within the deadline")
    return result


def _print_summary(console: Console, r: DemoResult, settings: Settings) -> None:
    for title, counts, label in (("requests by team", r.by_team, "team"),
                                 ("requests by model or alias", r.by_model, "model")):
        table = Table(title=title)
        table.add_column(label)
        table.add_column("requests", justify="right")
        for key, n in counts.most_common():
            table.add_row(key, str(n))
        console.print(table)
    console.print(
        f"produced {r.produced} requests in {r.produce_s:.2f} s "
        f"({r.produced / max(r.produce_s, 1e-9):,.0f}/s); "
        f"decoded {r.consumed} in {r.consume_s:.2f} s; "
        f"dead-lettered {r.dead_lettered} ({dict(r.reasons)})"
    )
    console.print(f"broker: {settings.kafka.bootstrap()}  state: {settings.state_dir}")
