"""Rebuild a partition's aggregates from the rows it committed to the compacted aggregates topic."""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from aggregation.cell import Cell
from aggregation.state import PartitionState
from streamgate.config import Settings
from streamgate.kafka.clients import consumer_config


def read_committed_rows(settings: Settings, topic: str, codec: Any,
                        timeout_s: float = 120.0) -> list[dict[str, Any]]:
    """Every committed row of the topic, oldest first (later rows of a key supersede earlier ones)."""
    consumer = Consumer(consumer_config(settings, group_id=f"restore-{uuid.uuid4().hex[:8]}"))
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        consumer.assign([TopicPartition(topic, p, 0) for p in parts if ends[p] > 0])
        pending = {p for p in parts if ends[p] > 0}
        rows: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout_s:.0f} s")
            for msg in consumer.consume(5000, timeout=0.5):
                if not msg.error() and msg.value() is not None:
                    rows.append(codec.decode(msg.value()))
            for tp in consumer.position([TopicPartition(topic, p) for p in pending]):
                if tp.offset >= ends[tp.partition]:
                    pending.discard(tp.partition)
        return rows
    finally:
        consumer.close()


def read_rows(settings: Settings, topic: str, codec: Any, states: dict[int, PartitionState]) -> int:
    """Load the latest row of every key owned by `states`' partitions into them; returns how many."""
    latest: dict[str, dict[str, Any]] = {}
    for row in read_committed_rows(settings, topic, codec):
        if row.get("source_partition") in states:
            latest[row["key"]] = row
    for row in latest.values():
        key, cell = Cell.from_row(row)
        states[key.partition].restore(key, cell, int(row.get("watermark_ms") or 0))
    for state in states.values():
        state.evict_closed()
    return len(latest)
