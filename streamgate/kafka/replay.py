"""Read a topic (or some of its partitions) from the start to where it ended when the read began.

Stages that keep their state in a compacted topic (the aggregator's rows, the request path's dedup
claims) rebuild it this way on assignment. The consumer is read_committed, so its end is the last stable
offset: records of a transaction that is still open are neither read nor waited for.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection, Iterator

from confluent_kafka import Consumer, Message, TopicPartition

from streamgate.config import Settings
from streamgate.kafka.clients import consumer_config


def read_to_end(settings: Settings, topic: str, partitions: Collection[int] | None = None, *,
                timeout_s: float = 120.0) -> Iterator[Message]:
    """Every committed record (tombstones included) of `partitions` (default: all), oldest first within
    a partition. Raises TimeoutError when the end is not reached within `timeout_s`."""
    consumer = Consumer(consumer_config(settings, group_id=f"replay-{uuid.uuid4().hex[:8]}"))
    try:
        found = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        wanted = [p for p in found if partitions is None or p in partitions]
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in wanted}
        pending = {p for p in wanted if ends[p] > 0}
        if not pending:
            return
        consumer.assign([TopicPartition(topic, p, 0) for p in pending])
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} {sorted(pending)} to its end in {timeout_s:.0f}s")
            for msg in consumer.consume(5000, timeout=0.5):
                if msg.error() is None and msg.partition() in pending:
                    yield msg
            for tp in consumer.position([TopicPartition(topic, p) for p in pending]):
                if tp.offset >= ends[tp.partition]:
                    pending.discard(tp.partition)
    finally:
        consumer.close()
