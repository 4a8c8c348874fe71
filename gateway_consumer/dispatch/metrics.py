"""What the dispatcher exports: its running counts by delta, and per request its latency and attempts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway_consumer.answer import Outcome
from shared.deadline import DEADLINE_EXCEEDED
from streamgate.observability.metrics import (
    CACHE,
    ERRORS,
    EVENTS_IN,
    EVENTS_OUT,
    LATENCY,
    PROVIDER_LATENCY,
)

C, STAGE = "dispatcher", "dispatch"
_TOTAL = LATENCY.labels(C, STAGE)
_EXPIRED = ERRORS.labels(C, STAGE, DEADLINE_EXCEEDED)  # requests whose caller had stopped waiting
_PROVIDER: dict[tuple[str, bool], Any] = {}  # children looked up once: `labels()` costs more than observe


def route(key: str) -> Iterable[Any]:
    """`DispatchStats.counts` keys -> metric children."""
    if key == "consumed":
        return [EVENTS_IN.labels(C, STAGE)]
    if key.startswith("answered_"):
        status = key.removeprefix("answered_")
        out = [EVENTS_OUT.labels(C, STAGE, "responses")]
        return out + ([ERRORS.labels(C, STAGE, "failed_answer")] if status == "failed" else [])
    if key == "dead_lettered":
        return [EVENTS_OUT.labels(C, STAGE, "deadletter"), ERRORS.labels(C, STAGE, "undecodable")]
    if key == "duplicates_skipped":
        return [ERRORS.labels(C, STAGE, "duplicate")]
    if key == "telemetry":
        return [EVENTS_OUT.labels(C, STAGE, "telemetry")]
    if key == "replied":  # final answers also sent to a waiting caller's reply partition
        return [EVENTS_OUT.labels(C, STAGE, "replies")]
    if key.startswith("lookup_"):  # cache lookups: hit_exact, hit_semantic, miss
        return [CACHE.labels(key.removeprefix("lookup_"))]
    return []


def observe(outcome: Outcome, total_s: float) -> None:
    """Per answered request: end-to-end seconds, each attempt's provider latency and error class."""
    _TOTAL.observe(total_s)
    if outcome.response["reason_code"] == DEADLINE_EXCEEDED:
        _EXPIRED.inc()
    for event in outcome.telemetry:
        if event.get("cache_hit"):
            continue
        ok = event["status"] == "ok"
        if event.get("latency_ms") is not None:
            key = (event["provider"], ok)
            if key not in _PROVIDER:
                _PROVIDER[key] = PROVIDER_LATENCY.labels(key[0], "ok" if ok else "error")
            _PROVIDER[key].observe(event["latency_ms"] / 1000)
        if not ok:
            ERRORS.labels(C, "provider", event.get("error_class") or "error").inc()
