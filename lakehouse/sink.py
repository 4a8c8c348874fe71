"""The bronze sink: every pipeline topic into its Delta table, exactly once.

The consumed offsets are committed *in the Delta transaction* that appends the rows (delta-rs
application transactions: one `Transaction(app_id="<group>:<topic>:<partition>", version=<last offset>)`
per source partition in the commit); the consume, buffer, resume-after-the-stored-offset loop is the
shared exactly-once batch sink (shared/tables/batch_sink.py), so a restart after a kill -9 at any moment
neither duplicates nor misses a row. Rows are buffered per table and written when `batch_rows` are
buffered or the oldest is `flush_s` old, so files are not tiny. Several sink processes may share the
group: each partition has one owner, and appends to one table from several writers do not conflict in
Delta's protocol.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pyarrow as pa
from confluent_kafka import Message
from deltalake import DeltaTable, Transaction
from deltalake.exceptions import TableNotFoundError

from lakehouse.tables import BRONZE, BronzeTable
from schemas import make_codec
from schemas.arrow_batch import ArrowBatch, ArrowBatchDecoder
from schemas.errors import EventDecodeError
from schemas.topics import physical_name
from shared.tables.batch_sink import ExactlyOnceBatchSink, delta_transaction_version
from shared.tables.delta import append_commit, open_table, write_table
from streamgate.config import Settings
from streamgate.gc_tuning import freeze_startup_heap
from streamgate.kafka.stranded import exit_when_stranded
from streamgate.observability import Heartbeat, serve_metrics
from streamgate.observability.metrics import COMMITS, ERRORS, EVENTS_IN, EVENTS_OUT, LATENCY
from streamgate.storage import TablePath

log = logging.getLogger("streamgate.lakehouse")
C = "lakehouse_sink"


def _route(key: str) -> list[Any]:
    """`BronzeSink.counts` keys ("rows:<table>") -> metric children."""
    if key.startswith("rows:"):
        return [EVENTS_OUT.labels(C, "bronze", key.removeprefix("rows:"))]
    return {"consumed": [EVENTS_IN.labels(C, "bronze")], "commits": [COMMITS.labels(C)],
            "undecodable": [ERRORS.labels(C, "bronze", "undecodable")]}.get(key, [])


def bronze_root(settings: Settings) -> TablePath:
    return settings.table_root() / "bronze"


def committed_version(path: TablePath, app_id: str) -> int | None:
    """The last Kafka offset of `app_id` already in the table, or None."""
    return delta_transaction_version(path, app_id)


class BronzeSink(ExactlyOnceBatchSink):
    def __init__(self, settings: Settings, *, instance: str = "0",
                 tables: tuple[BronzeTable, ...] = BRONZE, heartbeat: Heartbeat | None = None) -> None:
        self.root = bronze_root(settings)
        prefix, registry = settings.kafka.topic_prefix, settings.schema_registry.url
        self.by_topic = {physical_name(t.topic, prefix): t for t in tables}
        self.codecs = {name: make_codec(name, t.event_type, registry) for name, t in self.by_topic.items()}
        self.schemas = {t.name: t.schema() for t in tables}
        self.decoders = {name: ArrowBatchDecoder(self.codecs[name], t.event_schema())
                         for name, t in self.by_topic.items() if t.transform is None}
        self.tables: dict[str, DeltaTable] = {}
        limits = settings.lakehouse
        super().__init__(settings, component=C, group=prefix + limits.group_id, topics=list(self.by_topic),
                         role="lakehouse", instance=instance, batch_size=limits.batch_rows,
                         flush_s=limits.flush_s, heartbeat=heartbeat, route=_route)
        self.write_time = LATENCY.labels(C, "delta_write")

    def applied(self, topic: str, partition: int) -> int | None:
        return committed_version(self.root / self.by_topic[topic].name, self.app_id(topic, partition))

    def write(self, topic: str, messages: list[Message], last: dict[int, int]) -> None:
        name = self.by_topic[topic].name
        data = self._rows(topic, messages)
        txns = [Transaction(self.app_id(topic, p), o) for p, o in last.items()]
        began = time.perf_counter()
        write_table(self._table(name), data, mode="append", partition_by=["date"],
                        schema_mode="merge", commit_properties=append_commit(txns))
        self.write_time.observe(time.perf_counter() - began)
        self.counts[f"rows:{name}"] += data.num_rows

    def _table(self, name: str) -> DeltaTable | TablePath:
        """The open table (its log is read once, not at every write), or its path before it exists."""
        if name not in self.tables:
            try:
                self.tables[name] = open_table(self.root / name)
            except TableNotFoundError:
                return self.root / name
        return self.tables[name]

    def _rows(self, topic: str, messages: list[Message]) -> pa.Table:
        """The buffered records as the table's rows: decoded in one Arrow batch where the table takes
        the event as it is, one by one where a transform rewrites it (dead letters)."""
        table, schema = self.by_topic[topic], self.schemas[self.by_topic[topic].name]
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
    with exit_when_stranded():
        counts = sink.run()
    heartbeat.stop()
    log.info("stopped: %s", counts)
    return counts
