"""The aggregates one telemetry partition owns, and the event-time rules that update them.

Each row belongs to exactly one telemetry partition, so any number of workers can count without
sharing a counter: a total is the sum over partitions. An event updates the windows it falls in while
they are open (event time within the window's end plus the grace period, judged against the
partition's watermark, the latest event time seen). A later event is not dropped: it is counted in the
window that is open when it arrives and in that row's `late_events`, so totals over time stay exact
while closed windows are never rewritten.
"""

from __future__ import annotations

from typing import Any

from aggregation.cell import Cell, CellKey
from aggregation.windows import WINDOWS, dimension_values, window_bounds


class PartitionState:
    def __init__(self, partition: int, grace_ms: int) -> None:
        self.partition, self.grace_ms = partition, grace_ms
        self.cells: dict[CellKey, Cell] = {}
        self.watermark_ms = 0
        self.dirty: set[CellKey] = set()
        self.late_events = 0

    def apply(self, event: dict[str, Any]) -> None:
        at = int(event["ended_at"])
        self.watermark_ms = max(self.watermark_ms, at)
        dims = dimension_values(event)
        for window in WINDOWS:
            start, end = window_bounds(window, at)
            late = end + self.grace_ms <= self.watermark_ms
            if late:  # closed: count it where the watermark is, flagged
                start, end = window_bounds(window, self.watermark_ms)
                self.late_events += 1
            for dimension, value in dims:
                key = CellKey(window, start, dimension, value, self.partition)
                cell = self.cells.get(key)
                if cell is None:
                    cell = self.cells[key] = Cell(end)
                cell.add(event, late)
                self.dirty.add(key)

    def take_dirty(self) -> list[tuple[CellKey, Cell]]:
        rows = [(k, self.cells[k]) for k in self.dirty]
        self.dirty.clear()
        return rows

    def evict_closed(self) -> int:
        """Forget windows closed for a while (their last row stays on the compacted topic)."""
        horizon = self.watermark_ms - self.grace_ms
        gone = [k for k, c in self.cells.items() if c.window_end + WINDOWS[k.window] < horizon
                and k not in self.dirty]
        for k in gone:
            del self.cells[k]
        return len(gone)

    def restore(self, key: CellKey, cell: Cell, watermark_ms: int) -> None:
        self.watermark_ms = max(self.watermark_ms, watermark_ms)
        self.cells[key] = cell
