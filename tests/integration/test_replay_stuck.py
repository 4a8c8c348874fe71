"""`read_to_end` (how the dedup claims and the aggregator's rows are restored) against a real open
transaction: it waits for it, and when it gives up it says what held it, not only that it timed out."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Producer

from streamgate.config import Settings
from streamgate.kafka.clients import transactional_config
from streamgate.kafka.replay import read_to_end


def test_a_read_held_by_an_open_transaction_names_it_and_ends_once_it_is_aborted(
        settings: Settings, topics: dict[str, str]) -> None:
    topic = topics["audit"]
    name = f"{settings.kafka.topic_prefix}held-{uuid.uuid4().hex[:6]}"
    holder = Producer(transactional_config(settings, transactional_id=name, client_id=name, role="admin"))
    holder.init_transactions(30)
    holder.begin_transaction()
    holder.produce(topic, b"undecided", b"k", partition=0)
    holder.flush(10)
    try:
        with pytest.raises(TimeoutError, match=r"\[0\] at -?\d+, stable offset 0, high watermark 1\. "
                                               r"A stable offset below the high watermark is an open "
                                               r"transaction"):
            list(read_to_end(settings, topic, [0], role="admin", timeout_s=3))
    finally:
        holder.abort_transaction(30)
    assert list(read_to_end(settings, topic, [0], role="admin", timeout_s=30)) == []  # aborted: nothing
