"""Read a topic (or some of its partitions) from the start to where it ended when the read began.

Stages that keep their state in a compacted topic (the aggregator's rows, the request path's dedup
claims) rebuild it this way on assignment. The read is read_committed but runs to the high watermark,
not to the last stable offset: when a partition changes owner, the previous owner's last transaction
has been committed (its commit returned) but its markers may not be written yet, so its records are
still above the stable offset. Reading only to there missed them (found by a rebalance test: 4 of 3,000
requests decided twice). Waiting for the high watermark waits for those markers, or for a dead
owner's open transaction to be aborted (at most the transaction timeout).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Collection, Iterator
from functools import partial

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from streamgate.config import Role, Settings
from streamgate.kafka.clients import consumer_config, group_name


def read_to_end(settings: Settings, topic: str, partitions: Collection[int] | None = None, *, role: Role,
                timeout_s: float = 120.0) -> Iterator[Message]:
    """Every committed record (tombstones included) of `partitions` (default: all), oldest first within
    a partition. Raises TimeoutError when the end is not reached within `timeout_s`."""
    consumer = Consumer(consumer_config(settings, group_id=_group(settings), role=role))
    try:
        found = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        wanted = [p for p in found if partitions is None or p in partitions]
        ends = high_watermarks(settings, topic, wanted, role=role)
        pending = {p for p in wanted if ends[p] > 0}
        if not pending:
            return
        consumer.assign([TopicPartition(topic, p, 0) for p in pending])
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(_stuck(consumer, topic, pending, ends, timeout_s))
            for msg in consumer.consume(5000, timeout=0.5):
                if msg.error() is None and msg.partition() in pending:
                    yield msg
            for tp in consumer.position([TopicPartition(topic, p) for p in pending]):
                if tp.offset >= ends[tp.partition]:
                    pending.discard(tp.partition)
    finally:
        consumer.close()


def _stuck(consumer: Consumer, topic: str, pending: set[int], ends: dict[int, int], timeout_s: float) -> str:
    """Why the read did not end: where each partition stands against its last stable offset (what
    read_committed can reach) and the high watermark it must reach."""
    where = []
    for tp in consumer.position([TopicPartition(topic, p) for p in sorted(pending)]):
        try:
            stable = str(consumer.get_watermark_offsets(tp, timeout=5)[1])
        except KafkaException:
            stable = "?"
        end = ends[tp.partition]
        where.append(f"[{tp.partition}] at {tp.offset}, stable offset {stable}, high watermark {end}")
    return (f"could not read {topic} {sorted(pending)} to its end in {timeout_s:.0f}s: {'; '.join(where)}. "
            "A stable offset below the high watermark is an open transaction: it ends when its producer "
            "commits, aborts, is fenced by its next incarnation, or times out (transaction.timeout.ms)")


def high_watermarks(settings: Settings, topic: str, partitions: Collection[int],
                    retry: Callable[[Callable[[], tuple[int, int]]], tuple[int, int]] = lambda call: call(),
                    *, role: Role) -> dict[int, int]:
    """Log end offsets, undecided transactions included (a read_committed client is told the last
    stable offset instead). `retry` wraps each broker call (e.g. to ride out a leader election)."""
    probe = Consumer(consumer_config(settings, group_id=_group(settings), role=role)
                     | {"isolation.level": "read_uncommitted"})
    try:
        return {p: int(retry(partial(probe.get_watermark_offsets, TopicPartition(topic, p), timeout=10))[1])
                for p in partitions}
    finally:
        probe.close()


def _group(settings: Settings) -> str:
    """A throwaway group (nothing is committed) where the `replay-` group ACLs of schemas/principals.yaml
    allow it."""
    return group_name(settings, f"replay-{uuid.uuid4().hex[:8]}")
