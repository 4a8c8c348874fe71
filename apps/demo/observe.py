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
        o = self.outcomes
        for msg in self.consumer.consume(2000, timeout=timeout):
            if msg.error():
                continue
            topic = self.names[msg.topic() or ""]
            try:
                event = self.codecs[topic].decode(msg.value() or b"")
            except EventDecodeError:  # bad bytes on a topic: the stage reading it dead-letters them
                o.undecodable += 1
                continue
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
        elif event["status"] == "failed":
            o.failures[event["reason_code"] or "?"] += 1
        else:
            if event["cache_hit"]:
                o.cache_hits[event.get("cache_kind") or "exact"] += 1
            if event["latency_ms"] is not None:
                o.latencies_ms.add(event["latency_ms"])

    def close(self) -> None:
        self.consumer.close()
