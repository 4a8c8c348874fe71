"""Which offsets may be committed: only up to the first request whose outcome is not yet produced.

Requests finish out of order (a fast cache hit overtakes a slow provider call), so per partition the
commit point is the lowest offset still open, never the highest one finished.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

#: What offsets are counted per: a partition number, or (topic, partition) for several topics.
K = TypeVar("K", bound=Hashable)


class PartitionOffsets:
    def __init__(self) -> None:
        self._order: deque[int] = deque()
        self._done: set[int] = set()
        self._next: int | None = None

    def add(self, offset: int) -> None:
        self._order.append(offset)

    def done(self, offset: int) -> None:
        self._done.add(offset)

    def commit_point(self) -> int | None:
        """The offset to commit (the next one to read after a restart), or None if nothing advanced."""
        while self._order and self._order[0] in self._done:
            self._done.discard(offset := self._order.popleft())
            self._next = offset + 1
        return self._next

    def resume_point(self) -> int | None:
        """Where a restart must resume: the lowest offset not finished (also before any commit point
        exists, when the first offset read is still open), or past the last one; None if nothing was
        added."""
        point = self.commit_point()
        return self._order[0] if self._order else point

    def finished_ahead(self) -> list[int]:
        """Offsets past the commit point already finished (a restart from the point must not redo them
        when their outcomes are committed: the fused worker records them with its position)."""
        return sorted(self._done)

    @property
    def open(self) -> int:
        return len(self._order)


class OffsetTracker(Generic[K]):
    def __init__(self) -> None:
        self.partitions: dict[K, PartitionOffsets] = {}

    def add(self, partition: K, offset: int) -> None:
        self.partitions.setdefault(partition, PartitionOffsets()).add(offset)

    def done(self, partition: K, offset: int) -> None:
        if partition in self.partitions:
            self.partitions[partition].done(offset)

    def commit_points(self) -> dict[K, int]:
        return {p: n for p, t in self.partitions.items() if (n := t.commit_point()) is not None}

    def forget(self, partition: K) -> None:
        self.partitions.pop(partition, None)
