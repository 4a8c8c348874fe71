"""The base of every process that writes Kafka records out in batches, exactly once: consume, buffer per
topic, write a batch together with the offsets it covers, resume after those offsets.

A subclass names where the offsets of a batch are kept (`applied`) and writes a batch (`write`); the
store must record the batch's last offset per partition in the same atomic commit as its rows (a Delta
application transaction, a SQLite transaction). On assignment each partition is sought just past the
offset the store holds, so after a kill -9 at any moment a restart neither writes a record twice nor
misses one; Kafka's own committed offsets are written afterwards only to show lag. Rows are buffered per
topic and written when `batch_size` records are buffered or the oldest is `flush_s` old, so commits are
not tiny. A revoked partition's buffered records are dropped: its next owner resumes from the store.

The lakehouse's bronze sink (lakehouse/sink.py) and the RAG indexer (features/collections/indexer.py) are
its subclasses.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from deltalake.exceptions import TableNotFoundError

from shared.tables.delta import open_table
from streamgate.config import Role, Settings
from streamgate.kafka.clients import consumer_config
from streamgate.kafka.stranded import StrandedMemberError, StrandedWatch
from streamgate.observability import CountExport, Heartbeat, kafka_lag_stats
from streamgate.observability.metrics import COMMITS, EVENTS_IN
from streamgate.storage import TablePath

log = logging.getLogger("streamgate.tables")


def delta_transaction_version(path: TablePath, app_id: str) -> int | None:
    """The last Kafka offset of `app_id` already committed in the Delta table at `path`, or None."""
    try:
        return open_table(path).transaction_version(app_id)
    except TableNotFoundError:
        return None


class TopicBuffer:
    """Records of one topic since its last write."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.last: dict[int, int] = {}  # partition -> last offset buffered
        self.since = 0.0

    def drop_partition(self, partition: int) -> None:
        self.messages = [m for m in self.messages if m.partition() != partition]
        self.last.pop(partition, None)

    def clear(self) -> None:
        self.messages, self.last = [], {}


class ExactlyOnceBatchSink(ABC):
    """Consume `topics` as `group`, and write them out in batches through :meth:`write`."""

    def __init__(self, settings: Settings, *, component: str, group: str, topics: list[str], role: Role,
                 instance: str, batch_size: int, flush_s: float, heartbeat: Heartbeat | None = None,
                 route: Callable[[str], list[Any]] | None = None) -> None:
        self.settings, self.component, self.group, self.topics = settings, component, group, topics
        self.batch_size, self.flush_s = batch_size, flush_s
        self.buffers: dict[str, TopicBuffer] = defaultdict(TopicBuffer)
        instance_id = f"{group}-{instance}"
        self.consumer = Consumer(consumer_config(settings, group_id=group, role=role) | {
            "partition.assignment.strategy": "cooperative-sticky",
            "group.instance.id": instance_id, "enable.auto.offset.store": False}
            | kafka_lag_stats(component))
        self.watch = StrandedWatch(settings, role=role, group=group, instance_id=instance_id, topics=topics,
                                   after_s=settings.kafka.stranded_after_s)
        self.counts: dict[str, int] = defaultdict(int)
        self.running = True
        #: monotonic times of the first record buffered and the last commit: the steady-state window
        self.first_record_at: float | None = None
        self.last_commit_at: float | None = None
        self.heartbeat = heartbeat or Heartbeat(component, settings.metrics.stale_after_s)
        self.exported = CountExport(self.counts, route or self._route)

    def _route(self, key: str) -> list[Any]:
        return {"consumed": [EVENTS_IN.labels(self.component, "in")],
                "commits": [COMMITS.labels(self.component)]}.get(key, [])

    def app_id(self, topic: str, partition: int) -> str:
        """The name under which a store keeps the last offset of one source partition."""
        return f"{self.group}:{topic}:{partition}"

    @abstractmethod
    def applied(self, topic: str, partition: int) -> int | None:
        """The last offset of this partition the store holds, or None when it holds none."""

    @abstractmethod
    def write(self, topic: str, messages: list[Message], last: dict[int, int]) -> None:
        """Write one batch and, in the same atomic commit, `last` (partition -> last offset) as applied."""

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            version = self.applied(tp.topic, tp.partition)
            tp.offset = OFFSET_BEGINNING if version is None else version + 1
        log.info("%s: assigned %d partitions; resuming after the offsets the store holds", self.component,
                 len(partitions))
        consumer.incremental_assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            buffer = self.buffers[tp.topic]
            if tp.partition in buffer.last:
                buffer.drop_partition(tp.partition)
        consumer.incremental_unassign(partitions)

    def run(self, *, idle_exit_s: float | None = None) -> dict[str, int]:
        """Consume and write until stopped (or idle for `idle_exit_s` once partitions are ours).

        Raises StrandedMemberError when the group leaves this member without the partitions it should hold
        (streamgate/kafka/stranded.py); the caller exits so that a restart rejoins afresh. Nothing is lost:
        the store holds the offsets, and a revoked partition's buffered records are written by its next
        owner."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: setattr(self, "running", False))
        self.consumer.subscribe(self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_revoke)
        last_event = time.monotonic()
        while self.running:
            batch = self.consumer.consume(min(5000, self.batch_size), timeout=0.2)
            self.heartbeat.beat()
            self.counts["consumed"] += len(batch)
            self._buffer(batch)
            holding = bool(self.consumer.assignment())
            if batch or not holding:  # idle time counts once partitions are ours
                last_event = time.monotonic()
            if self.watch.stranded(holding):
                raise StrandedMemberError(f"{self.component}: group {self.group} left member "
                                          f"{self.watch.instance_id} without partitions")
            self._flush_due()
            if idle_exit_s is not None and time.monotonic() - last_event > idle_exit_s:
                break
        self._flush_due(force=True)
        self.consumer.close()
        return dict(self.counts)

    def _buffer(self, batch: list[Message]) -> None:
        if batch and self.first_record_at is None:
            self.first_record_at = time.monotonic()
        for msg in batch:
            if msg.error():
                log.warning("consume error: %s", msg.error())
                continue
            buffer = self.buffers[msg.topic() or ""]
            if not buffer.last:
                buffer.since = time.monotonic()
            buffer.messages.append(msg)
            buffer.last[msg.partition() or 0] = msg.offset() or 0

    def _flush_due(self, force: bool = False) -> None:
        for topic, buffer in self.buffers.items():
            if not buffer.last:
                continue
            full = len(buffer.messages) >= self.batch_size
            if force or full or time.monotonic() - buffer.since >= self.flush_s:
                self.write(topic, buffer.messages, dict(buffer.last))
                self.counts["commits"] += 1
                self.last_commit_at = time.monotonic()
                offsets = [TopicPartition(topic, p, o + 1) for p, o in buffer.last.items()]
                self.consumer.commit(offsets=offsets, asynchronous=True)  # lag only: the store is the truth
                buffer.clear()
                self.exported.publish()
