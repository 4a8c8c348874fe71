"""The request path's watchdog reads its group's real state: partitions owned when stable, None otherwise."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from schemas.topics import load_topic_specs
from streamgate.config import Settings
from streamgate.kafka.clients import admin_config, consumer_config
from streams.watchdog import owned_partitions

pytestmark = pytest.mark.kafka


def test_owned_partitions_of_a_stable_group_and_of_none(settings: Settings, topics: dict[str, str]) -> None:
    admin = AdminClient(admin_config(settings, role="admin"))
    group = f"watch-{uuid.uuid4().hex[:6]}"
    assert owned_partitions(admin, group) is None  # no such group: nothing to judge
    consumer = Consumer(consumer_config(settings, group_id=group, role="admin"))
    consumer.subscribe([topics["requests"], topics["deadletter"]])
    try:
        deadline = time.monotonic() + 30
        owned = None
        while owned is None and time.monotonic() < deadline:
            consumer.poll(0.5)
            owned = owned_partitions(admin, group) if consumer.assignment() else None
        counts = {s.name: s.partitions for s in load_topic_specs(partitions=settings.kafka.partitions)}
        assert owned == counts["requests"] + counts["deadletter"]  # all owned by the one member
    finally:
        consumer.close()
