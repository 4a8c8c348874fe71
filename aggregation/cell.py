"""One aggregate row: exact integer counters plus a mergeable latency sketch.

Money and tokens are integers (nano-dollars), so sums are exact in any order; latency percentiles come
from a DDSketch, which merges across partitions and windows without keeping samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ddsketch import DDSketch

from shared.usage.sketch import COUNTERS, RELATIVE_ACCURACY, dump_sketch, load_sketch


class CellKey(NamedTuple):
    window: str
    window_start: int
    dimension: str
    value: str
    partition: int

    def encoded(self) -> str:
        return f"{self.window}|{self.window_start}|{self.dimension}|{self.value}|p{self.partition}"


@dataclass
class Partial:
    """Events of one batch that land in the same cells, summed before they touch any cell."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS[:-1], 0))
    sketch: DDSketch = field(default_factory=lambda: DDSketch(RELATIVE_ACCURACY))

    def add(self, event: dict[str, Any]) -> None:
        c = self.counts
        c["attempts"] += 1
        c["requests"] += event["attempt"] == 1
        c["errors"] += event["status"] != "ok"
        c["cache_hits"] += bool(event["cache_hit"])
        c["prompt_tokens"] += event["prompt_tokens"]
        c["completion_tokens"] += event["completion_tokens"]
        c["cached_tokens"] += event["cached_tokens"]
        c["cost_nanousd"] += event["cost_nanousd"]
        latency = event["latency_ms"]
        # provider latency: a cache answer took no provider time and would pull the percentiles that
        # latency-aware routing reads towards zero (gold provider_daily leaves them out too)
        if latency is not None and latency > 0 and not event["cache_hit"]:
            self.sketch.add(latency)


@dataclass
class Cell:
    window_end: int
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    sketch: DDSketch = field(default_factory=lambda: DDSketch(RELATIVE_ACCURACY))

    def merge(self, partial: Partial, late: bool) -> None:
        c = self.counts
        for name, value in partial.counts.items():
            c[name] += value
        if late:
            c["late_events"] += partial.counts["attempts"]
        if partial.sketch.count:
            self.sketch.merge(partial.sketch)

    def quantile(self, q: float) -> float | None:
        return self.sketch.get_quantile_value(q) if self.sketch.count else None

    def to_row(self, key: CellKey, watermark_ms: int, now_ms: int) -> dict[str, Any]:
        return {
            "key": key.encoded(), "window": key.window, "window_start": key.window_start,
            "window_end": self.window_end, "dimension": key.dimension, "dimension_value": key.value,
            **self.counts,
            "latency_p50_ms": self.quantile(0.5), "latency_p95_ms": self.quantile(0.95),
            "latency_p99_ms": self.quantile(0.99), "updated_at": now_ms,
            "source_partition": key.partition, "watermark_ms": watermark_ms,
            "latency_sketch": dump_sketch(self.sketch) if self.sketch.count else None,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> tuple[CellKey, Cell]:
        key = CellKey(row["window"], _ms(row["window_start"]), row["dimension"], row["dimension_value"],
                      row["source_partition"])
        cell = cls(_ms(row["window_end"]), {k: int(row.get(k) or 0) for k in COUNTERS})
        if row.get("latency_sketch"):
            cell.sketch = load_sketch(row["latency_sketch"])
        return key, cell


def _ms(value: Any) -> int:
    """Avro timestamp-millis decode to datetimes in some readers; rows here keep integers."""
    if isinstance(value, int):
        return value
    return int(value.timestamp() * 1000)
