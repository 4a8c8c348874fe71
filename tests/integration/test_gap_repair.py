"""Offset-gap repair against the real broker: skipped records come back, in-order ones cost nothing."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from streamgate.config import Settings
from streamgate.kafka.clients import consumer_config, producer_config
from streams.gaps import GapRepair

pytestmark = pytest.mark.kafka


def _group(settings: Settings) -> str:
    """A group name the request path's principal may use (schemas/principals.yaml)."""
    return f"{settings.kafka.topic_prefix}{settings.streams.group_id}-t{uuid.uuid4().hex[:6]}"


def _values(settings: Settings, topic: str, expected: int) -> list[bytes]:
    consumer = Consumer(consumer_config(settings, group_id=f"t-{uuid.uuid4().hex[:6]}", role="admin"))
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list[bytes] = []
    for _ in range(40):
        values += [m.value() for m in consumer.consume(100, timeout=0.5) if not m.error()]
        if len(values) >= expected:
            break
    consumer.close()
    return values


def test_a_jump_re_enqueues_exactly_the_skipped_records(settings: Settings, topics: dict[str, str]) -> None:
    topic = topics["requests"]
    producer = Producer(producer_config(settings, client_id="t", role="admin"))
    for i in range(10):
        producer.produce(topic, value=f"r{i}".encode(), key=b"k", partition=0)
    producer.flush(10)
    gaps = GapRepair(settings, group_id=_group(settings))

    asyncio.run(gaps.repair(topic, 0, 0))  # first sight at the log start: nothing skipped
    assert [gaps.in_order(topic, 0, o) for o in (1, 2)] == [True, True]
    assert not gaps.in_order(topic, 0, 7)  # 3..6 were never delivered
    asyncio.run(gaps.repair(topic, 0, 7))
    assert gaps.repaired == 4 and gaps.in_order(topic, 0, 8)
    assert _values(settings, topic, 14)[10:] == [b"r3", b"r4", b"r5", b"r6"]

    gaps.forget([(topic, 0)])  # revoked: the next first sight asks the group's committed offset again
    assert not gaps.in_order(topic, 0, 9)


def test_first_sight_beyond_the_committed_offset_is_a_gap(settings: Settings, topics: dict[str, str]) -> None:
    topic, group = topics["requests"], _group(settings)
    producer = Producer(producer_config(settings, client_id="t", role="admin"))
    for i in range(6):
        producer.produce(topic, value=f"r{i}".encode(), key=b"k", partition=0)
    producer.flush(10)
    committer = Consumer(consumer_config(settings, group_id=group, role="admin"))
    committer.commit(offsets=[TopicPartition(topic, 0, 2)], asynchronous=False)
    committer.close()

    gaps = GapRepair(settings, group_id=group)
    asyncio.run(gaps.repair(topic, 0, 4))  # the group resumes at 2, the first record delivered is 4
    assert gaps.repaired == 2
    assert _values(settings, topic, 8)[6:] == [b"r2", b"r3"]
