"""The feature push worker: usage.aggregates in, Feast push sources (online) and feature tables out.

Feast never reads Kafka itself. This worker follows the aggregates topic (the aggregator's exactly-once
output) with `LiveUsage`, and every `push_interval_s` pushes the entities whose rows changed: provider
latency p50/p95 and error rate over the last minutes, and per team and API key the requests and tokens
of the current minute and the spend today and this month. The same rows are appended to the feature
tables, so training sets see exactly what the gateway read. Freshness lag (the newest event counted
→ readable online) is measured per push.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
from feast import FeatureStore

from features import tables
from features.store import apply
from shared.usage.live import LiveUsage
from shared.usage.windows import month_start_ms, window_bounds
from streamgate.config import Settings

log = logging.getLogger(__name__)

#: aggregate dimension -> (feature view / push source, entity join key)
VIEWS = {"model": ("provider_health", "target"), "team": ("team_usage", "team"),
         "api_key": ("key_usage", "api_key_id")}


@dataclass
class PushReport:
    rows: dict[str, int] = field(default_factory=dict)
    #: push completed (online-readable) minus the newest event time counted in what was pushed, ms
    lag_ms: list[float] = field(default_factory=list)


class FeaturePusher:
    def __init__(self, settings: Settings, store: FeatureStore | None = None) -> None:
        self.settings = settings
        self.store = store or apply(settings)[0]
        self.live = LiveUsage(settings, dimensions=tuple(VIEWS), role="features")
        self.stop_event = threading.Event()
        #: entities a failed push left behind (pushed again with the next round)
        self._retry: dict[tuple[str, str], int] = {}

    def start(self) -> FeaturePusher:
        self.live.start()
        return self

    def close(self) -> None:
        self.stop_event.set()
        self.live.close()

    def push_once(self, now_ms: int | None = None) -> PushReport:
        changed, self._retry = self._retry, {}
        for entity, at in self.live.take_changed().items():
            changed[entity] = max(at, changed.get(entity, 0))
        try:
            return self._push(changed, now_ms or int(time.time() * 1000))
        except Exception:
            self._retry = changed  # the online values are the latest totals: pushing again is safe
            raise

    def _push(self, changed: dict[tuple[str, str], int], now_ms: int) -> PushReport:
        report = PushReport()
        for dimension, (view, key) in VIEWS.items():
            entities = {value: at for (dim, value), at in changed.items() if dim == dimension}
            if not entities:
                continue
            rows = [{key: value, "event_timestamp": _ts(at), **self._features(dimension, value, now_ms)}
                    for value, at in entities.items()]
            frame = pd.DataFrame(rows)
            self.store.push(f"{view}_push", frame)
            done_ms = time.time() * 1000
            report.lag_ms += [done_ms - at for at in entities.values()]
            tables.append(self.settings, view, pa.Table.from_pandas(frame, preserve_index=False))
            report.rows[view] = len(rows)
        return report

    def run(self) -> None:
        interval = self.settings.features.push_interval_s
        while not self.stop_event.wait(interval):
            try:
                report = self.push_once()
            except Exception:  # a failed push is retried with the next changes; the worker keeps running
                log.exception("feature push failed")
                continue
            if report.rows:
                lag = max(report.lag_ms)
                log.info("pushed %s (freshness lag max %.0f ms)", report.rows, lag)

    def _features(self, dimension: str, value: str, now_ms: int) -> dict[str, Any]:
        if dimension == "model":
            total = self.live.recent(dimension, value, now_ms, self.settings.features.health_window_minutes)
            attempts = total.counts["attempts"]
            return {"latency_p50_ms": total.quantile(0.5), "latency_p95_ms": total.quantile(0.95),
                    "error_rate": total.counts["errors"] / attempts if attempts else None,
                    "attempts_5m": attempts}
        scope = value if dimension == "team" else f"-/{value}"  # a key's rows are keyed by its hash alone
        used = self.live.usage(scope, now_ms)
        minute, _ = window_bounds("1m", now_ms)
        day, _ = window_bounds("1d", now_ms)
        return {"minute_start_ms": minute, "requests_1m": used.requests_last_minute,
                "tokens_1m": used.tokens_last_minute, "day_start_ms": day,
                "spend_today_nanousd": used.spend_today_nanousd, "month_start_ms": month_start_ms(now_ms),
                "spend_month_nanousd": used.spend_month_nanousd}


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def run_worker(settings: Settings) -> None:
    """`streamgate features push`: runs until interrupted."""
    logging.basicConfig(level=logging.INFO)
    pusher = FeaturePusher(settings).start()
    try:
        pusher.run()
    except KeyboardInterrupt:
        pass
    finally:
        pusher.close()
