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
from pathlib import Path
from typing import Any

import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import TableNotFoundError

from lakehouse.tables import BRONZE, BronzeTable
from schemas import make_codec
from schemas.arrow_batch import ArrowBatch, ArrowBatchDecoder
from schemas.errors import EventDecodeError
from schemas.topics import physical_name
from streamgate.config import Settings
from streamgate.gc_tuning import freeze_startup_heap
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
    """Records of one table since its last write; decoded in one batch when written."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.last: dict[int, int] = {}  # partition -> last offset buffered
        self.since = 0.0

    def drop_partition(self, partition: int) -> None:
        self.messages = [m for m in self.messages if m.partition() != partition]
        self.last.pop(partition, None)

    def clear(self) -> None:
        self.messages, self.last = [], {}


class BronzeSink:
    def __init__(self, settings: Settings, *, instance: str = "0",
                 tables: tuple[BronzeTable, ...] = BRONZE, heartbeat: Heartbeat | None = None) -> None:
        self.settings, self.root = settings, bronze_root(settings)
        prefix, registry = settings.kafka.topic_prefix, settings.schema_registry.url
        self.group = prefix + settings.lakehouse.group_id
        self.by_topic = {physical_name(t.topic, prefix): t for t in tables}
        self.codecs = {name: make_codec(name, t.event_type, registry) for name, t in self.by_topic.items()}
        self.schemas = {t.name: t.schema() for t in tables}
        self.decoders = {name: ArrowBatchDecoder(self.codecs[name], t.event_schema())
                         for name, t in self.by_topic.items() if t.transform is None}
        self.buffers: dict[str, _Buffer] = defaultdict(_Buffer)
        self.tables: dict[str, DeltaTable] = {}
        self.consumer = Consumer(consumer_config(settings, group_id=self.group, role="lakehouse") | {
            "partition.assignment.strategy": "cooperative-sticky",
            "group.instance.id": f"{self.group}-{instance}", "enable.auto.offset.store": False}
            | kafka_lag_stats(C))
        self.counts: dict[str, int] = defaultdict(int)
        self.running = True
        #: monotonic times of the first record buffered and the last commit: the steady-state window
        self.first_record_at: float | None = None
        self.last_commit_at: float | None = None
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
                buffer.drop_partition(tp.partition)
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
            self._buffer(batch)
            if batch or not self.consumer.assignment():  # idle time counts once partitions are ours
                last_event = time.monotonic()
            self._flush_due()
            if idle_exit_s is not None and time.monotonic() - last_event > idle_exit_s:
                break
        self._flush_due(force=True)
        self.consumer.close()
        return dict(self.counts)

    def _buffer(self, batch: list[Message]) -> None:
        if batch and self.first_record_at is None:
            self.first_record_at = time.monotonic()
        buffers = {topic: self.buffers[table.name] for topic, table in self.by_topic.items()}
        for msg in batch:
            if msg.error():
                log.warning("consume error: %s", msg.error())
                continue
            buffer = buffers[msg.topic() or ""]
            if not buffer.last:
                buffer.since = time.monotonic()
            buffer.messages.append(msg)
            buffer.last[msg.partition() or 0] = msg.offset() or 0

    def _flush_due(self, force: bool = False) -> None:
        limits = self.settings.lakehouse
        for name, buffer in self.buffers.items():
            if not buffer.last:
                continue
            full = len(buffer.messages) >= limits.batch_rows
            if force or full or time.monotonic() - buffer.since >= limits.flush_s:
                self._write(name, buffer)
                self.exported.publish()

    def _write(self, name: str, buffer: _Buffer) -> None:
        topic = next(t for t, table in self.by_topic.items() if table.name == name)
        data = self._rows(topic, buffer)
        txns = [Transaction(self.app_id(topic, p), o) for p, o in buffer.last.items()]
        began = time.perf_counter()
        write_deltalake(self._table(name), data, mode="append", partition_by=["date"],
                        schema_mode="merge", commit_properties=CommitProperties(app_transactions=txns))
        self.write_time.observe(time.perf_counter() - began)
        self.counts[f"rows:{name}"] += data.num_rows
        self.counts["commits"] += 1
        self.last_commit_at = time.monotonic()
        offsets = [TopicPartition(topic, p, o + 1) for p, o in buffer.last.items()]
        self.consumer.commit(offsets=offsets, asynchronous=True)  # for lag only; Delta is the truth
        buffer.clear()

    def _table(self, name: str) -> DeltaTable | str:
        """The open table (its log is read once, not at every write), or its path before it exists."""
        if name not in self.tables:
            try:
                self.tables[name] = DeltaTable(str(self.root / name))
            except TableNotFoundError:
                return str(self.root / name)
        return self.tables[name]

    def _rows(self, topic: str, buffer: _Buffer) -> pa.Table:
        """The buffered records as the table's rows: decoded in one Arrow batch where the table takes
        the event as it is, one by one where a transform rewrites it (dead letters)."""
        table, schema = self.by_topic[topic], self.schemas[self.by_topic[topic].name]
        messages = buffer.messages
        values = [m.value() or b"" for m in messages]
        if table.transform is None:
            batch = self.decoders[topic].decode(values)
        else:
            batch = self._transformed(topic, values)
        for i, err in batch.errors:
            # the stage that wrote the topic dead-letters its own input; a record here that does not
            # decode is counted and skipped (it is still on the topic, and its offset is committed)
            log.error("%s: undecodable record at %s@%s skipped: %s", table.name, messages[i].partition(),
                      messages[i].offset(), err)
            self.counts["undecodable"] += 1
        taken = pa.array(batch.index, pa.int64())
        ts = pa.array([m.timestamp()[1] for m in messages], pa.timestamp("ms", tz="UTC")).take(taken)
        meta = {"_partition": pa.array([m.partition() for m in messages], pa.int32()).take(taken),
                "_offset": pa.array([m.offset() for m in messages], pa.int64()).take(taken),
                "_kafka_ts": ts, "date": ts.cast(pa.date32()).cast(pa.string())}
        columns = [batch.table.column(f.name) if f.name not in meta else meta[f.name] for f in schema]
        # one chunk: delta-rs writes a file per record batch of a partition, and the reader's are small
        return pa.Table.from_arrays(columns, schema=schema).combine_chunks()

    def _transformed(self, topic: str, values: list[bytes]) -> ArrowBatch:
        table = self.by_topic[topic]
        assert table.transform is not None
        rows, index, errors = [], [], []
        for i, value in enumerate(values):
            try:
                rows.append(table.transform(self.codecs[topic].decode(value)))
                index.append(i)
            except EventDecodeError as err:
                errors.append((i, err))
        return ArrowBatch(pa.Table.from_pylist(rows, schema=table.event_schema()), index, errors)


def run_sink(settings: Settings, *, instance: str = "0", metrics_port: int | None = None) -> dict[str, int]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    heartbeat = serve_metrics(settings, C, metrics_port)
    sink = BronzeSink(settings, instance=instance, heartbeat=heartbeat)
    freeze_startup_heap()
    counts = sink.run()
    heartbeat.stop()
    log.info("stopped: %s", counts)
    return counts
