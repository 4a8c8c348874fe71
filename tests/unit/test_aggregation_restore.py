"""Restoring the aggregator's state reads the aggregates topic one row at a time.

Until compaction runs, that topic holds every version of every row (276,000 after three
million-request demos on one deployment), and reading them into a list first took the aggregator's
peak RSS to 1 GB at start-up. Pure logic: the topic is stood in for by a generator of messages.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from aggregation import restore
from aggregation.state import PartitionState


class _Message:
    def __init__(self, n: int) -> None:
        self.n = n

    def value(self) -> bytes:
        return b"x"


class _Codec:
    def decode(self, _: bytes) -> dict[str, Any]:
        # a row of another partition's state: read, then not kept (a row's decoded size, ~1 KB)
        return {"key": "k", "source_partition": 9, "payload": "p" * 1000}


def test_rows_are_read_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    def topic(*_: Any, **__: Any) -> Iterator[_Message]:
        return (_Message(n) for n in range(20_000))

    monkeypatch.setattr(restore, "read_to_end", topic)
    tracemalloc.start()
    try:
        kept = restore.read_rows(None, "usage.aggregates", _Codec(), {0: PartitionState(0, 60_000)})  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kept == 0
    assert peak < 2_000_000, f"{peak:,} bytes at the peak: the rows were held, not streamed"
