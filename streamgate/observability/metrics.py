"""The metric families every component exports, and two helpers that keep hot paths lean.

Components count into their own `collections.Counter` as they always did (a dict bump per event) and
`CountExport.publish()` turns the deltas into Prometheus counters once per batch or commit. Consumer lag
comes from librdkafka's statistics callback (every few seconds, on the consuming thread), not from
broker round trips. Names are the contract the Grafana dashboard and the compose test read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

log = logging.getLogger("streamgate.metrics")

#: Seconds: a few ms (a batch of the request path) up to provider timeouts.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

EVENTS_IN = Counter("streamgate_events_in", "Events consumed, per component and stage.",
                    ["component", "stage"])
EVENTS_OUT = Counter("streamgate_events_out", "Events produced or rows written, per destination "
                     "topic or table.",
                     ["component", "stage", "destination"])
ERRORS = Counter("streamgate_errors", "Events that failed: undecodable, dead-lettered, failed answers, "
                 "provider errors (kind says which).", ["component", "stage", "kind"])
LATENCY = Histogram("streamgate_latency_seconds", "Seconds per unit of work: a request (dispatcher), a batch "
                    "(stream stages), a transaction (aggregator), a Delta write (sink), a simulated call.",
                    ["component", "stage"], buckets=_BUCKETS)
PROVIDER_LATENCY = Histogram("streamgate_provider_latency_seconds", "Seconds per provider attempt, as the "
                             "dispatcher measured it.", ["provider", "outcome"], buckets=_BUCKETS)
COMMITS = Counter("streamgate_commits", "Kafka transactions or Delta commits.", ["component"])
LAG = Gauge("streamgate_consumer_lag", "Records between the consumer's position and the end of the "
            "partition (last stable offset).", ["component", "topic", "partition"])
BREAKER = Gauge("streamgate_circuit_breaker_state", "Circuit breaker per provider/model: 0 closed, "
                "1 half-open, 2 open.", ["provider", "model"])
CACHE = Counter("streamgate_cache_lookups", "Dispatcher answers by cache result: hit_exact, hit_semantic, "
                "miss.", ["result"])
SEMANTIC_SHED = Counter("streamgate_semantic_cache_shed", "Requests dispatched without a semantic-cache "
                        "lookup because their embedding could not be had in time (backlog) or failed.",
                        ["reason"])
SEMANTIC_EMBEDDINGS = Counter("streamgate_semantic_embeddings", "Texts the semantic cache needed a vector "
                              "for, by where it came from: model (computed) or memo (seen recently).",
                              ["source"])
LAST_PROGRESS = Gauge("streamgate_last_progress_timestamp_seconds", "Unix time the component's loop last "
                      "made progress (what /healthz judges).", ["component"])

BREAKER_LEVEL = {"closed": 0, "half_open": 1, "open": 2}

#: A count key -> the metric children it feeds (none: not exported).
Route = Callable[[str], Iterable[Any]]


class CountExport:
    """Publish a component's running totals (a Counter it bumps anyway) as Prometheus counters, by delta."""

    def __init__(self, counts: Mapping[str, int], route: Route) -> None:
        self.counts, self.route = counts, route
        self.seen: dict[str, int] = {}
        self.children: dict[str, list[Any]] = {}

    def publish(self) -> None:
        for key, total in list(self.counts.items()):
            delta = total - self.seen.get(key, 0)
            if delta <= 0:
                continue
            self.seen[key] = total
            if key not in self.children:
                self.children[key] = list(self.route(key))
            for child in self.children[key]:
                child.inc(delta)


def set_breakers(states: Mapping[str, str]) -> None:
    """`Breakers.states()` ({"provider/model": "open"}) as gauges."""
    for target, state in states.items():
        provider, _, model = target.partition("/")
        BREAKER.labels(provider, model).set(BREAKER_LEVEL.get(state, 0))


def set_lag(component: str, lags: Mapping[tuple[str, int], int]) -> None:
    for (topic, partition), lag in lags.items():
        LAG.labels(component, topic, str(partition)).set(max(lag, 0))


def lag_from_stats(stats: dict[str, Any]) -> dict[tuple[str, int], int]:
    """Per assigned partition: end of the partition minus the next offset to be handed to the app.

    librdkafka's own `consumer_lag` is measured from the consumer's committed offset, which consumers
    that commit through producer transactions never update, so it is recomputed from `app_offset`."""
    lags: dict[tuple[str, int], int] = {}
    for topic, t in (stats.get("topics") or {}).items():
        for key, p in (t.get("partitions") or {}).items():
            partition = int(key)
            if partition < 0 or p.get("fetch_state") in ("none", "stopped"):
                continue
            end = p.get("ls_offset", -1) if p.get("ls_offset", -1) >= 0 else p.get("hi_offset", -1)
            position = p.get("app_offset", -1)
            if position < 0:
                position = p.get("committed_offset", -1)
            if end >= 0 and position >= 0:
                lags[(topic, partition)] = end - position
    return lags


def kafka_lag_stats(component: str, interval_ms: int = 5000) -> dict[str, Any]:
    """confluent-kafka consumer settings that report lag into `streamgate_consumer_lag` every few seconds."""

    def on_stats(raw: str) -> None:
        try:
            set_lag(component, lag_from_stats(json.loads(raw)))
        except (ValueError, TypeError, AttributeError) as exc:  # a metrics hiccup must not stop consuming
            log.warning("unreadable librdkafka statistics: %s", exc)

    return {"statistics.interval.ms": interval_ms, "stats_cb": on_stats}
