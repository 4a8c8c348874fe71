"""A group member left without the partitions it should hold is noticed through the real broker's
coordinator (streamgate/kafka/stranded.py), and a spare member is not."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from lakehouse.sink import BronzeSink
from schemas import make_codec
from shared.traffic.telemetry import telemetry_events
from streamgate.config import Settings
from streamgate.kafka.clients import base_config, consumer_config, producer_config
from streamgate.kafka.stranded import StrandedMemberError, group_view

pytestmark = pytest.mark.kafka


def _one_partition_topic(settings: Settings) -> str:
    name = settings.kafka.topic_prefix + "stranded"
    admin = AdminClient(base_config(settings, "t-admin", role="admin"))
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)
    return name


def _member(settings: Settings, group: str, instance: str, topic: str) -> Consumer:
    consumer = Consumer(consumer_config(settings, group_id=group, role="admin") | {
        "partition.assignment.strategy": "cooperative-sticky", "group.instance.id": instance})
    consumer.subscribe([topic])
    return consumer


def _poll_until(consumers: list[Consumer], done: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not done():
        for c in consumers:
            c.poll(0.1)
    assert done(), "the group did not settle in time"


@pytest.fixture()
def pair(settings: Settings) -> Iterator[tuple[str, str, Consumer, Consumer]]:
    topic, group = _one_partition_topic(settings), settings.kafka.topic_prefix + "g"
    a, b = _member(settings, group, "a", topic), _member(settings, group, "b", topic)
    admin = AdminClient(base_config(settings, "t-settle", role="admin"))

    def settled() -> bool:  # both joined, one holds the partition, and the rebalance has completed
        held = len(a.assignment()) + len(b.assignment())
        return held == 1 and group_view(admin, group, "a", [topic]).stable

    try:
        _poll_until([a, b], settled)
        yield topic, group, a, b
    finally:
        a.close()
        b.close()


def test_a_spare_member_is_not_stranded_and_one_dropped_by_its_client_is(
        settings: Settings, pair: tuple[str, str, Consumer, Consumer]) -> None:
    topic, group, a, b = pair
    holder, spare = (a, "b") if a.assignment() else (b, "a")
    admin = AdminClient(base_config(settings, "t-watch", role="admin"))
    view = group_view(admin, group, spare, [topic])
    assert (view.stable, view.ours, view.unowned) == (True, 0, 0)
    assert not view.stranded()
    holding = "a" if spare == "b" else "b"
    holder.incremental_unassign(holder.assignment())  # the client drops what the coordinator gave it
    assert not holder.assignment()
    view = group_view(admin, group, holding, [topic])
    assert view.ours == 1 and view.stranded()


class _DroppingSink(BronzeSink):
    """The bronze sink, made to drop its partitions client-side after its first write: what a member
    stranded after a broker restart looks like from inside (it holds nothing; the group says it should)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.writes = 0

    def write(self, topic: str, messages: list[Message], last: dict[int, int]) -> None:
        super().write(topic, messages, last)
        self.writes += 1
        self.consumer.incremental_unassign(self.consumer.assignment())


def test_the_sink_raises_stranded_once_it_held_nothing_too_long(settings: Settings, topics: dict[str, str],
                                                                  tmp_path: Path) -> None:
    settings = settings.model_copy(update={
        "kafka": settings.kafka.model_copy(update={"stranded_after_s": 3.0}),
        "lakehouse": settings.lakehouse.model_copy(update={"batch_rows": 100, "flush_s": 0.2})})
    topic = topics["telemetry"]
    codec = make_codec(topic, "Telemetry")
    producer = Producer(producer_config(settings, client_id="t", role="admin"))
    for e in telemetry_events(200, start_ms=int(time.time() * 1000) - 60_000, span_ms=60_000):
        producer.produce(topic, codec.encode(e), e["request_id"].encode())
    producer.flush(30)
    sink = _DroppingSink(settings)
    began = time.monotonic()
    with pytest.raises(StrandedMemberError, match="without partitions"):
        sink.run(idle_exit_s=60)
    assert sink.writes >= 1
    assert 3.0 <= time.monotonic() - began < 60
