"""Follow the outcome topics from where the run started and tally what happened to every request."""

from __future__ import annotations

import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from ddsketch import DDSketch

from schemas import EventDecodeError, make_codec
from schemas.topics import Topic, physical_name
from streamgate.config import Settings
from streamgate.kafka.clients import consumer_config

WATCHED = {Topic.ROUTED: "RoutedRequest", Topic.RESPONSES: "Response", Topic.DEADLETTER: "DeadLetter",
           Topic.VERDICTS: "GuardrailVerdict", Topic.AUDIT: "AuditEvent", Topic.TELEMETRY: "Telemetry"}


@dataclass
class Outcomes:
    #: the run's request ids start with this; `mine` counts how many of them have their final answer
    run_prefix: str = ""
    mine: int = 0
    routed: int = 0
    rejected: dict[str, str] = field(default_factory=dict)
    dead_letters: Counter[str] = field(default_factory=Counter)
    entities: Counter[str] = field(default_factory=Counter)
    routes: Counter[str] = field(default_factory=Counter)
    audits: int = 0
    undecodable: int = 0
    #: request id -> final status of its Response (ok | failed | rejected); a second one is counted apart
    answered: dict[str, str] = field(default_factory=dict)
    answered_twice: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)
    cost_nanousd: int = 0
    cache_hits: Counter[str] = field(default_factory=Counter)
    #: latency of ok answers, in a sketch (1% relative accuracy): bounded memory at any request count
    latencies_ms: DDSketch = field(default_factory=lambda: DDSketch(0.01))
    #: what the gateway itself added to a provider-answered request: its answer's completion (the
    #: gateway's `completed_at`) minus the request's creation by the client, minus the time its provider
    #: attempts took (cache hits apart). Not the time this watcher read the answer: the demo reads only
    #: once it has sent everything, so that measured the run's length (p50 29 s in a 60 s demo)
    gateway_ms: DDSketch = field(default_factory=lambda: DDSketch(0.01))
    #: request id -> ms from creation to completion, waiting for its provider time (and vice versa); both
    #: halves commit in one transaction, so these hold only what one read has not yet paired
    _gross_ms: dict[str, float] = field(default_factory=dict)
    _provider_ms: dict[str, float] = field(default_factory=dict)
    _attempts_ms: dict[str, float] = field(default_factory=dict)

    def provider_attempt(self, event: dict[str, Any]) -> None:
        """One telemetry attempt: attempts of a request are produced in order to one partition, so its
        provider time is complete at its ok attempt."""
        if event["cache_hit"]:
            return
        rid = event["request_id"]
        spent = self._attempts_ms.pop(rid, 0.0) + float(event["latency_ms"] or 0.0)
        if event["status"] != "ok":
            self._attempts_ms[rid] = spent
            return
        gross = self._gross_ms.pop(rid, None)
        if gross is None:
            self._provider_ms[rid] = spent
        else:
            self.gateway_ms.add(max(gross - spent, 0.0))

    def provider_answered(self, rid: str, gross_ms: float) -> None:
        spent = self._provider_ms.pop(rid, None)
        if spent is None:
            self._gross_ms[rid] = gross_ms
        else:
            self.gateway_ms.add(max(gross_ms - spent, 0.0))

    def settled(self, rid: str) -> None:
        """A failed or rejected request: its failed attempts' times are not waited for any longer."""
        self._attempts_ms.pop(rid, None)

    def finished(self, request_ids: set[str]) -> int:
        """How many of `request_ids` have their final answer (a Response: ok, failed or rejected)."""
        return len(request_ids & self.answered.keys())


class OutcomeWatcher:
    def __init__(self, settings: Settings, run_id: str = "") -> None:
        prefix = settings.kafka.topic_prefix
        self.names = {physical_name(t, prefix): t for t in WATCHED}
        self.codecs = {t: make_codec(physical_name(t, prefix), et, settings.schema_registry.url)
                       for t, et in WATCHED.items()}
        self.consumer = Consumer(consumer_config(settings, group_id=f"demo-watch-{uuid.uuid4().hex[:8]}",
                                                 role="admin"))
        self.consumer.assign(self._ends())
        self.outcomes = Outcomes(run_prefix=run_id)

    def _ends(self) -> list[TopicPartition]:
        marks = []
        for name in self.names:
            for p in self.consumer.list_topics(name, timeout=10).topics[name].partitions:
                marks.append(TopicPartition(name, p, self._high(TopicPartition(name, p))))
        return marks

    def _high(self, tp: TopicPartition, attempts: int = 20) -> int:
        """The end offset, retried while a just-created partition is still electing its leader."""
        for attempt in range(attempts):
            try:
                return int(self.consumer.get_watermark_offsets(tp, timeout=10)[1])
            except KafkaException:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.25)
        raise AssertionError("unreachable")

    def poll(self, timeout: float = 0.5) -> None:
        """What has arrived, as soon as one record has: not `consume(2000, timeout)`, which waits for 2,000
        records or the timeout, and would make every answer look up to `timeout` late."""
        first = self.consumer.poll(timeout)
        if first is None:
            return
        for msg in (first, *self.consumer.consume(2000, timeout=0)):
            if msg.error():
                continue
            self._record(msg)

    def _record(self, msg: Any) -> None:
        o = self.outcomes
        topic = self.names[msg.topic() or ""]
        try:
            event = self.codecs[topic].decode(msg.value() or b"")
        except EventDecodeError:  # bad bytes on a topic: the stage reading it dead-letters them
            o.undecodable += 1
            return
        if topic == Topic.ROUTED:
            o.routed += 1
            first = event["targets"][0]
            o.routes[f"{event['requested_model']} -> {first['provider']}/{first['model']}"] += 1
        elif topic == Topic.RESPONSES:
            self._response(event)
        elif topic == Topic.TELEMETRY:
            outcome = event["error_class"] or event["status"]
            o.attempts[f"{event['provider']}/{event['model']} {outcome}"] += 1
            o.cost_nanousd += event["cost_nanousd"]
            o.provider_attempt(event)
        elif topic == Topic.DEADLETTER:
            o.dead_letters[event["reason_code"]] += 1
        elif topic == Topic.VERDICTS:
            o.entities.update(e["type"] for e in event["entities"])
        elif topic == Topic.AUDIT:
            o.audits += 1

    def _response(self, event: dict[str, Any]) -> None:
        o, rid = self.outcomes, event["request_id"]
        if rid in o.answered:
            o.answered_twice += 1
            return
        o.answered[rid] = sys.intern(event["status"])  # one "ok" string, not a million of them
        o.mine += rid.startswith(o.run_prefix)
        if event["status"] == "rejected":
            o.rejected[rid] = event["reason_code"] or "?"
            o.settled(rid)
        elif event["status"] == "failed":
            o.failures[event["reason_code"] or "?"] += 1
            o.settled(rid)
        else:
            if event["cache_hit"]:
                o.cache_hits[event.get("cache_kind") or "exact"] += 1
            else:
                o.provider_answered(rid, event["completed_at"] - event["created_at"])
            if event["latency_ms"] is not None:
                o.latencies_ms.add(event["latency_ms"])

    def close(self) -> None:
        self.consumer.close()
