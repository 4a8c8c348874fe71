"""Request ids already answered, so a replayed or duplicated routed request is not answered twice.

Two sources of repeats: a dispatcher restart replays requests after the last committed offset whose
answers were already committed (they rode in a transaction with an earlier commit point), and an
at-least-once upstream stage may route one request twice. On assignment the set is seeded from the
responses topic (read_committed) since shortly before the first request to be replayed.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from schemas.codec import TopicCodec
from schemas.errors import EventDecodeError
from streamgate.config import Settings
from streamgate.kafka.clients import consumer_config

#: How far before the first replayed request's timestamp answers are looked for (clock skew margin).
SEED_MARGIN_MS = 60_000
T = TypeVar("T")


class AnsweredIds:
    """A bounded, insertion-ordered set of request ids."""

    def __init__(self, capacity: int = 1_000_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, request_id: str) -> None:
        self._ids[request_id] = None
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)


_RETRIABLE = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
              KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._TIMED_OUT}


def _patiently(call: Callable[[], T], attempts: int = 20) -> T:
    """A metadata call, retried while the cluster is still electing leaders (a topic just created, a
    broker just restarted): on assignment, an exception here would stop the dispatcher."""
    for attempt in range(attempts):
        try:
            return call()
        except KafkaException as exc:
            error = exc.args[0]
            if attempt == attempts - 1 or not (error.retriable() or error.code() in _RETRIABLE):
                raise
            time.sleep(min(0.1 * 2 ** attempt, 2.0))
    raise AssertionError("unreachable")


def replay_start_ms(settings: Settings, routed: str, partition: int, committed: int) -> int | None:
    """Timestamp of the first record that will be replayed on `partition`, or None if none will be."""
    probe = Consumer(consumer_config(settings, group_id=f"sg-probe-{uuid.uuid4().hex[:8]}"))
    try:
        low, high = _patiently(lambda: probe.get_watermark_offsets(TopicPartition(routed, partition),
                                                                   timeout=10))
        start = max(committed, low) if committed >= 0 else low
        if start >= high:
            return None
        probe.assign([TopicPartition(routed, partition, start)])
        for _ in range(50):
            msg = probe.poll(0.2)
            if msg is not None and msg.error() is None:
                return int(msg.timestamp()[1])
        return 0  # could not read it: seed from the beginning rather than risk answering twice
    finally:
        probe.close()


def seed_answered(settings: Settings, responses: str, partitions: list[int], since_ms: int,
                  codec: TopicCodec, into: AnsweredIds) -> int:
    """Add the ids of every committed answer on `partitions` of `responses` since `since_ms`."""
    reader = Consumer(consumer_config(settings, group_id=f"sg-seed-{uuid.uuid4().hex[:8]}"))
    try:
        wanted = [TopicPartition(responses, p, max(since_ms - SEED_MARGIN_MS, 0)) for p in partitions]
        starts = _patiently(lambda: reader.offsets_for_times(wanted, timeout=10))
        high = partial(reader.get_watermark_offsets, timeout=10)
        ends = {p: _patiently(partial(high, TopicPartition(responses, p)))[1] for p in partitions}
        todo = {tp.partition for tp in starts if 0 <= tp.offset < ends[tp.partition]}
        if not todo:
            return 0
        reader.assign([tp for tp in starts if tp.partition in todo])
        added, deadline = 0, time.monotonic() + 60
        while todo and time.monotonic() < deadline:
            for msg in reader.consume(1000, timeout=1.0):
                if msg.error() is not None:
                    continue
                try:
                    into.add(codec.decode(msg.value() or b"")["request_id"])
                    added += 1
                except EventDecodeError:
                    pass  # not an answer we can read; it cannot be one of ours either
                part, offset = msg.partition() or 0, msg.offset() or 0
                if offset + 1 >= ends[part]:
                    todo.discard(part)
            positions = reader.position([TopicPartition(responses, p) for p in todo])
            todo -= {tp.partition for tp in positions if tp.offset >= ends[tp.partition]}
        return added
    finally:
        reader.close()
