"""Offset-gap repair: a record faust skipped becomes a late record, never a lost one.

faust-streaming can hand an agent a prefetched record from beyond the committed position around an
assignment (upstream issues #216 and #221), and the records in between are then never delivered; a
demo run showed one request vanishing this way with no error anywhere. Each stage therefore tracks the
last offset it processed per partition; when the next one jumps ahead, the records in the gap are read
back with a plain consumer and produced again to the same partition. Control records of transactions
also leave gaps; reading the gap back finds nothing for them, so they cost one fetch and no record.
A record that faust does deliver after all is then seen twice, which downstream dedup by request id
absorbs (the validate stage's claim table, the dispatcher's answered set).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from streamgate.config import Settings
from streamgate.kafka.clients import consumer_config, producer_config

log = logging.getLogger(__name__)
_COORDINATOR_STARTING = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                         KafkaError.COORDINATOR_NOT_AVAILABLE}


class GapRepair:
    """Per-partition last offset of one consumer group; re-enqueues what a jump skipped."""

    def __init__(self, settings: Settings, group_id: str) -> None:
        self._settings, self._group = settings, group_id
        self._last: dict[tuple[str, int], int] = {}
        self.repaired = 0

    def in_order(self, topic: str, partition: int, offset: int) -> bool:
        """The per-event fast path: True (and noted) when `offset` follows the last one seen."""
        last = self._last.get((topic, partition))
        if last is None or offset > last + 1:
            return False
        self._last[(topic, partition)] = max(last, offset)
        return True

    async def repair(self, topic: str, partition: int, offset: int, wait_s: float = 600) -> None:
        """Called when :meth:`in_order` said no: re-enqueue whatever lies between the last and `offset`.

        Broker errors are waited out (up to `wait_s`): raising here would crash the faust agent with its
        batch in hand, and faust then commits past that batch, losing it (found by `streamgate chaos`
        restarting the broker)."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                return await self._repair(topic, partition, offset)
            except KafkaException as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("gap check on %s[%d] waits for the broker: %s", topic, partition, exc)
                await asyncio.sleep(1.0)

    async def _repair(self, topic: str, partition: int, offset: int) -> None:
        key = (topic, partition)
        last = self._last.get(key)
        if last is None:
            last = await asyncio.to_thread(self._position, topic, partition) - 1
        if offset > last + 1:
            self.repaired += await asyncio.to_thread(self._reenqueue, topic, partition, last + 1, offset)
        self._last[key] = max(last, offset)

    def forget(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Revoked partitions: another worker moves them on, so our last offsets are stale."""
        for key in partitions:
            self._last.pop(key, None)

    def _position(self, topic: str, partition: int) -> int:
        """Where the group resumes: its committed offset, or the log start when it has none."""
        consumer = Consumer(consumer_config(self._settings, group_id=self._group, role="streams"))
        try:
            tp = self._committed(consumer, TopicPartition(topic, partition))
            if tp.offset != OFFSET_INVALID and tp.offset >= 0:
                return int(tp.offset)
            low, _ = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            return int(low)
        finally:
            consumer.close()

    @staticmethod
    def _committed(consumer: Consumer, tp: TopicPartition, attempts: int = 30) -> TopicPartition:
        for attempt in range(attempts):  # a coordinator that is still loading answers "not coordinator"
            try:
                [committed] = consumer.committed([tp], timeout=10)
                return committed
            except KafkaException as err:
                error = err.args[0]
                waiting = error.retriable() or error.code() in _COORDINATOR_STARTING
                if not waiting or attempt == attempts - 1:
                    raise
                time.sleep(0.5)
        raise AssertionError("unreachable")

    def _reenqueue(self, topic: str, partition: int, start: int, end: int) -> int:
        """Produce the records at offsets [start, end) of one partition again; returns how many."""
        group = f"{self._group}-gap-{uuid.uuid4().hex[:6]}"
        consumer = Consumer(consumer_config(self._settings, group_id=group, role="streams"))
        producer = Producer(producer_config(self._settings, client_id=f"{self._group}-gap", role="streams"))
        sent = 0
        try:
            consumer.assign([TopicPartition(topic, partition, start)])
            done = False
            while not done:
                batch = consumer.consume(500, timeout=2.0)
                done = not batch  # only control records (or nothing) were left in the gap
                for msg in batch:
                    offset = msg.offset()
                    if msg.error() or offset is None:
                        continue
                    if offset >= end:
                        done = True
                        break
                    producer.produce(topic, value=msg.value(), key=msg.key(), partition=partition)
                    sent += 1
                    done = offset + 1 >= end
            if producer.flush(30) != 0:
                raise RuntimeError(f"could not re-enqueue the gap {topic}[{partition}] {start}..{end - 1}")
        finally:
            consumer.close()
        if sent:
            log.error("offset gap on %s[%d]: offsets %d..%d were skipped by the consumer; re-enqueued %d "
                      "record(s)", topic, partition, start, end - 1, sent)
        return sent
