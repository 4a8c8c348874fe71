"""Reading usage: totals across partitions, and the live usage the request path's budget check reads."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from ddsketch import DDSketch

from schemas import make_codec
from schemas.snapshots import UsageSnapshot
from schemas.topics import Topic, physical_name
from shared.usage.sketch import COUNTERS, RELATIVE_ACCURACY, load_sketch
from shared.usage.windows import month_start_ms, window_bounds
from streamgate.config import Role, Settings
from streamgate.kafka.clients import consumer_config, group_name

log = logging.getLogger(__name__)
Group = tuple[str, int, str, str]  # window, window_start, dimension, value


@dataclass
class Total:
    """One window and dimension value, summed over the partial rows of every telemetry partition."""

    window: str
    window_start: int
    dimension: str
    value: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    sketch: DDSketch = field(default_factory=lambda: DDSketch(RELATIVE_ACCURACY))

    def quantile(self, q: float) -> float | None:
        return self.sketch.get_quantile_value(q) if self.sketch.count else None

    def add(self, row: dict[str, Any]) -> None:
        for k in COUNTERS:
            self.counts[k] += int(row.get(k) or 0)
        if row.get("latency_sketch"):
            self.sketch.merge(load_sketch(row["latency_sketch"]))


def totals(rows: Iterable[dict[str, Any]]) -> dict[Group, Total]:
    """Latest row per key, then summed per group; `rows` oldest first."""
    latest = {row["key"]: row for row in rows}
    out: dict[Group, Total] = {}
    for row in latest.values():
        group = (row["window"], int(row["window_start"]), row["dimension"], row["dimension_value"])
        (out.get(group) or out.setdefault(group, Total(*group))).add(row)
    return out


class LiveUsage:
    """Follows the aggregates topic in a thread; implements the request path's `UsageReader`.

    Keeps the current minute and this month's days per team and key, summing the partitions' partial
    rows on read, so limits are exact however many aggregator replicas there are.
    """

    def __init__(self, settings: Settings, dimensions: tuple[str, ...] = ("team", "api_key"), *,
                 role: Role) -> None:
        self.dimensions = dimensions
        self.topic = physical_name(Topic.AGGREGATES, settings.kafka.topic_prefix)
        self.codec = make_codec(self.topic, "UsageAggregate", settings.schema_registry.url)
        group = group_name(settings, f"usage-{uuid.uuid4().hex[:8]}")
        self.consumer = Consumer(consumer_config(settings, group_id=group,
                                                 role=role))
        self.rows: dict[Group, dict[int, dict[str, Any]]] = defaultdict(dict)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._follow, name="usage-follower", daemon=True)
        #: how long after its event the latest row became visible here (enforcement lag), ms
        self.last_lag_ms: float | None = None
        self._seen = 0
        #: (dimension, value) -> latest event time seen in its rows, since the last `take_changed`
        self._changed: dict[tuple[str, str], int] = {}

    def start(self) -> LiveUsage:
        parts = self.consumer.list_topics(self.topic, timeout=10).topics[self.topic].partitions
        self.consumer.assign([TopicPartition(self.topic, p, 0) for p in parts])
        self.thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.consumer.close()

    def _follow(self) -> None:
        while not self.stop.is_set():
            for msg in self.consumer.consume(2000, timeout=0.1):
                value = msg.value()
                if msg.error() or value is None:
                    continue
                try:
                    row = self.codec.decode(value)
                except Exception:  # a bad row must not stop budget reads; the aggregator dead-letters input
                    log.exception("undecodable usage row at %s@%s", msg.partition(), msg.offset())
                    continue
                if row["window"] == "1h" or row["dimension"] not in self.dimensions:
                    continue
                group = (row["window"], int(row["window_start"]), row["dimension"], row["dimension_value"])
                entity = (row["dimension"], row["dimension_value"])
                with self.lock:
                    self.rows[group][int(row["source_partition"])] = row
                    self._changed[entity] = max(self._changed.get(entity, 0), int(row["watermark_ms"]))
                    self._seen += 1
                    if self._seen % 10_000 == 0:
                        self._prune(int(row["watermark_ms"]))
                self.last_lag_ms = time.time() * 1000 - int(row["watermark_ms"])

    def _prune(self, now_ms: int) -> None:
        """Keep the minutes a limit can still read and this month's days (and last month's, at the turn)."""
        for group in [g for g in self.rows if (g[0] == "1m" and g[1] < now_ms - 120_000)
                      or (g[0] == "1d" and g[1] < now_ms - 32 * 86_400_000)]:
            del self.rows[group]

    def take_changed(self) -> dict[tuple[str, str], int]:
        """The (dimension, value) pairs whose rows changed since the last call, with their latest event
        time (what the feature push worker pushes)."""
        with self.lock:
            changed, self._changed = self._changed, {}
        return changed

    def recent(self, dimension: str, value: str, now_ms: int, minutes: int) -> Total:
        """The last `minutes` 1-minute windows (the current one included), summed over partitions."""
        minute, _ = window_bounds("1m", now_ms)
        total = Total("1m", minute - (minutes - 1) * 60_000, dimension, value)
        with self.lock:
            partials = [r for start in range(total.window_start, minute + 1, 60_000)
                        for r in self.rows.get(("1m", start, dimension, value), {}).values()]
        for row in partials:
            total.add(row)
        return total

    def _sum(self, group: Group, *fields: str) -> int:
        with self.lock:
            partials = list(self.rows.get(group, {}).values())
        return sum(int(r[f]) for r in partials for f in fields)

    def usage(self, scope: str, now_ms: int) -> UsageSnapshot:
        dimension, value = ("api_key", scope.split("/", 1)[1]) if "/" in scope else ("team", scope)
        minute, _ = window_bounds("1m", now_ms)
        day, _ = window_bounds("1d", now_ms)
        month_start = month_start_ms(now_ms)
        month = sum(self._sum(("1d", d, dimension, value), "cost_nanousd")
                    for d in range(month_start, day + 1, 86_400_000))
        return UsageSnapshot(
            requests_last_minute=self._sum(("1m", minute, dimension, value), "requests"),
            tokens_last_minute=self._sum(("1m", minute, dimension, value), "prompt_tokens",
                                         "completion_tokens"),
            spend_today_nanousd=self._sum(("1d", day, dimension, value), "cost_nanousd"),
            spend_month_nanousd=month,
        )
