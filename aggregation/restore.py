"""Rebuild a partition's aggregates from the rows it committed to the compacted aggregates topic."""

from __future__ import annotations

from typing import Any

from aggregation.cell import Cell
from aggregation.state import PartitionState
from streamgate.config import Role, Settings
from streamgate.kafka.replay import read_to_end


def read_committed_rows(settings: Settings, topic: str, codec: Any, timeout_s: float = 120.0, *,
                        role: Role = "aggregator") -> list[dict[str, Any]]:
    """Every committed row of the topic, oldest first (later rows of a key supersede earlier ones).
    `role`: the aggregator restoring its state, or an operator tool (admin)."""
    return [codec.decode(msg.value())
            for msg in read_to_end(settings, topic, role=role, timeout_s=timeout_s)
            if msg.value() is not None]


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
