"""The bronze sink: every pipeline topic into its Delta table, exactly once.

The consumed offsets are committed *in the Delta transaction* that appends the rows (delta-rs
application transactions: one `Transaction(app_id="<group>:<topic>:<partition>", version=<last offset>)`
per source partition in the commit). On assignment the sink reads `transaction_version` for each
partition and seeks just past it, so after a kill -9 at any moment a restart neither duplicates nor
misses a row; Kafka's own committed offsets are written afterwards only to show lag. Rows are buffered
per table and written when `batch_rows` are buffered or the oldest is `flush_s` old, so files are not
tiny. Several sink processes may share the group: each partition has one owner, and appends to one
table from several writers do not conflict in Delta's protocol.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import TableNotFoundError

from lakehouse.tables import BRONZE, BronzeTable
from schemas import make_codec
from schemas.errors import EventDecodeError
from schemas.topics import physical_name
from streamgate.config import Settings
from streamgate.kafka.clients import consumer_config
from streamgate.observability import CountExport, Heartbeat, kafka_lag_stats, serve_metrics
from streamgate.observability.metrics import COMMITS, ERRORS, EVENTS_IN, EVENTS_OUT, LATENCY

log = logging.getLogger("streamgate.lakehouse")
C = "lakehouse_sink"


def _route(key: str) -> list[Any]:
    """`BronzeSink.counts` keys ("rows:<table>") -> metric children."""
    if key.startswith("rows:"):
        return [EVENTS_OUT.labels(C, "bronze", key.removeprefix("rows:"))]
    return {"consumed": [EVENTS_IN.labels(C, "bronze")], "commits": [COMMITS.labels(C)],
            "undecodable": [ERRORS.labels(C, "bronze", "undecodable")]}.get(key, [])


def bronze_root(settings: Settings) -> Path:
    return settings.resolve(settings.lakehouse.root) / "bronze"


def committed_version(path: Path, app_id: str) -> int | None:
    """The last Kafka offset of `app_id` already in the table, or None."""
    try:
        return DeltaTable(str(path)).transaction_version(app_id)
    except TableNotFoundError:
        return None


class _Buffer:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.last: dict[int, int] = {}  # partition -> last offset buffered
        self.since = 0.0


class BronzeSink:
    def __init__(self, settings: Settings, *, instance: str = "0",
                 tables: tuple[BronzeTable, ...] = BRONZE, heartbeat: Heartbeat | None = None) -> None:
        self.settings, self.root = settings, bronze_root(settings)
        prefix, registry = settings.kafka.topic_prefix, settings.schema_registry.url
        self.group = prefix + settings.lakehouse.group_id
        self.by_topic = {physical_name(t.topic, prefix): t for t in tables}
        self.codecs = {name: make_codec(name, t.event_type, registry) for name, t in self.by_topic.items()}
        self.schemas = {t.name: t.schema() for t in tables}
        self.buffers: dict[str, _Buffer] = defaultdict(_Buffer)
        self.consumer = Consumer(consumer_config(settings, group_id=self.group) | {
            "partition.assignment.strategy": "cooperative-sticky",
            "group.instance.id": f"{self.group}-{instance}", "enable.auto.offset.store": False}
            | kafka_lag_stats(C))
        self.counts: dict[str, int] = defaultdict(int)
        self.running = True
        self.heartbeat = heartbeat or Heartbeat(C, settings.metrics.stale_after_s)
        self.exported = CountExport(self.counts, _route)
        self.write_time = LATENCY.labels(C, "delta_write")

    def app_id(self, topic: str, partition: int) -> str:
        return f"{self.group}:{topic}:{partition}"

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            table = self.by_topic[tp.topic]
            version = committed_version(self.root / table.name, self.app_id(tp.topic, tp.partition))
            tp.offset = OFFSET_BEGINNING if version is None else version + 1
        log.info("assigned %d partitions; resuming after the offsets committed in the Delta tables",
                 len(partitions))
        consumer.incremental_assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # buffered rows of a revoked partition are dropped: its new owner resumes after the Delta version
        for tp in partitions:
            buffer = self.buffers[self.by_topic[tp.topic].name]
            if tp.partition in buffer.last:
                buffer.rows = [r for r in buffer.rows if r["_partition"] != tp.partition]
                del buffer.last[tp.partition]
        consumer.incremental_unassign(partitions)

    def run(self, *, idle_exit_s: float | None = None) -> dict[str, int]:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: setattr(self, "running", False))
        self.consumer.subscribe(list(self.by_topic), on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_revoke)
        last_event = time.monotonic()
        while self.running:
            batch = self.consumer.consume(min(5000, self.settings.lakehouse.batch_rows), timeout=0.2)
            self.heartbeat.beat()
            self.counts["consumed"] += len(batch)
            for msg in batch:
                self._buffer(msg)
            if batch or not self.consumer.assignment():  # idle time counts once partitions are ours
                last_event = time.monotonic()
            self._flush_due()
            if idle_exit_s is not None and time.monotonic() - last_event > idle_exit_s:
                break
        self._flush_due(force=True)
        self.consumer.close()
        return dict(self.counts)

    def _buffer(self, msg: Message) -> None:
        if msg.error():
            log.warning("consume error: %s", msg.error())
            return
        topic, partition, offset = msg.topic() or "", msg.partition(), msg.offset()
        assert partition is not None and offset is not None
        table = self.by_topic[topic]
        try:
            record = self.codecs[topic].decode(msg.value() or b"", partition=partition, offset=offset)
        except EventDecodeError as err:
            # the stage that wrote the topic dead-letters its own input; a record here that does not
            # decode is counted and skipped (it is still on the topic)
            log.error("%s: undecodable record skipped: %s", table.name, err)
            self.counts["undecodable"] += 1
            record = None
        buffer = self.buffers[table.name]
        if record is not None:
            if table.transform is not None:
                record = table.transform(record)
            _, ts = msg.timestamp()
            record |= {"_partition": partition, "_offset": offset, "_kafka_ts": ts,
                       "date": datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y-%m-%d")}
            buffer.rows.append(record)
        if not buffer.last:
            buffer.since = time.monotonic()
        buffer.last[partition] = offset

    def _flush_due(self, force: bool = False) -> None:
        limits = self.settings.lakehouse
        for name, buffer in self.buffers.items():
            if not buffer.last:
                continue
            full = len(buffer.rows) >= limits.batch_rows
            if force or full or time.monotonic() - buffer.since >= limits.flush_s:
                self._write(name, buffer)
                self.exported.publish()

    def _write(self, name: str, buffer: _Buffer) -> None:
        topic = next(t for t, table in self.by_topic.items() if table.name == name)
        txns = [Transaction(self.app_id(topic, p), o) for p, o in buffer.last.items()]
        data = pa.Table.from_pylist(buffer.rows, schema=self.schemas[name])
        began = time.perf_counter()
        write_deltalake(str(self.root / name), data, mode="append", partition_by=["date"],
                        schema_mode="merge", commit_properties=CommitProperties(app_transactions=txns))
        self.write_time.observe(time.perf_counter() - began)
        self.counts[f"rows:{name}"] += len(buffer.rows)
        self.counts["commits"] += 1
        offsets = [TopicPartition(topic, p, o + 1) for p, o in buffer.last.items()]
        self.consumer.commit(offsets=offsets, asynchronous=True)  # for lag only; Delta is the truth
        buffer.rows, buffer.last = [], {}


def run_sink(settings: Settings, *, instance: str = "0", metrics_port: int | None = None) -> dict[str, int]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    heartbeat = serve_metrics(settings, C, metrics_port)
    counts = BronzeSink(settings, instance=instance, heartbeat=heartbeat).run()
    heartbeat.stop()
    log.info("stopped: %s", counts)
    return counts
