"""The request path's inputs and outputs: codecs per topic, and the records a rejection produces.

A rejected request always yields three things, so nothing is silent: a dead letter with the original
bytes and the reason, a `rejected` Response so the caller learns the outcome (on `requests.rejected`,
from where the dispatcher answers it exactly once), and, for denials, an audit event saying who was
refused what and why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from schemas import TopicCodec, dead_letter, make_codec
from schemas.events import REPLY_PARTITION_HEADER
from schemas.splice import RoutedSplicer, StringFieldSplicer
from schemas.topics import Topic, physical_name
from shared.guardrails.outcome import Rejection, event_id
from streamgate.config import Settings

_EVENT_TYPES = {
    Topic.REQUESTS: "Request", Topic.GUARDED: "Request",
    Topic.ROUTED: "RoutedRequest", Topic.REJECTED: "Response", Topic.VERDICTS: "GuardrailVerdict",
    Topic.AUDIT: "AuditEvent", Topic.DEADLETTER: "DeadLetter", Topic.CONFIG: "ConfigRecord",
}


@dataclass(frozen=True, slots=True)
class Output:
    topic: str
    key: bytes
    value: bytes | None  # None: a tombstone (compacted topics)
    #: None: the producer's partitioner chooses by key. Set for changelog records, which must land in
    #: the partition of the record they belong to.
    partition: int | None = None
    #: Kafka headers, (name, value) pairs; only a rejection for a waiting caller has one (`REPLY_HEADER`).
    headers: list[tuple[str, str | bytes | None]] | None = None


class StageIO:
    """Physical topic names and codecs for one deployment (prefix, wire format)."""

    def __init__(self, settings: Settings) -> None:
        prefix, registry = settings.kafka.topic_prefix, settings.schema_registry.url
        self.names = {t: physical_name(t, prefix) for t in _EVENT_TYPES}
        self.codecs: dict[Topic, TopicCodec] = {
            t: make_codec(self.names[t], et, registry) for t, et in _EVENT_TYPES.items()}
        #: routed bytes from the guarded request's bytes (single-object encoding only)
        self.splicer = None if registry else RoutedSplicer()
        #: a request's bytes with its key hash replaced by the key's id (authentication), likewise
        self.key_splicer = None if registry else StringFieldSplicer("Request", "api_key_id")

    def out(self, topic: Topic, key: str | bytes, record: dict[str, Any]) -> Output:
        raw_key = key if isinstance(key, bytes) else key.encode()
        return Output(self.names[topic], raw_key, self.codecs[topic].encode(record))

    def rejection_outputs(self, rejection: Rejection, *, source: Topic, partition: int, offset: int,
                          raw_key: bytes | None, raw_value: bytes, event: dict[str, Any] | None,
                          policy_version: str | None) -> list[Output]:
        request_id = (event or {}).get("request_id")
        key = raw_key or (request_id or "").encode()
        outputs = [self.out(Topic.DEADLETTER, key, dead_letter(
            self.names[source], partition, offset, rejection.stage, rejection.reason_code, rejection.message,
            raw_value, raw_key, request_id))] if rejection.dead_letter else []
        if event is not None and request_id and rejection.respond:
            # to the dispatcher, which answers each request exactly once (a replay here may reject again)
            # the Response has no field for where its caller waits: a header carries it to the dispatcher
            rejected = self.out(Topic.REJECTED, key, rejected_response(event, rejection))
            if (reply := event.get("reply_partition")) is not None:
                rejected = replace(rejected, headers=[(REPLY_PARTITION_HEADER, str(reply).encode())])
            outputs.append(rejected)
            if rejection.audit:
                outputs.append(self.out(Topic.AUDIT, key, audit_event(event, rejection, policy_version)))
        return outputs


def _now() -> int:
    return int(time.time() * 1000)


def rejected_response(event: dict[str, Any], rejection: Rejection) -> dict[str, Any]:
    return {
        "request_id": event["request_id"], "trace_id": event.get("trace_id") or "",
        "team": event.get("team") or "", "project": event.get("project") or "",
        "api_key_id": event.get("api_key_id") or "", "status": rejection.status,
        "reason_code": rejection.reason_code, "message": rejection.message, "content": None,
        "finish_reason": None, "provider": None, "model": None, "target_index": None,
        "cache_hit": False, "cache_kind": None,
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0, "reasoning_tokens": 0},
        "cost_nanousd": 0, "latency_ms": None, "created_at": event.get("created_at") or _now(),
        "completed_at": _now(),
    }


def redaction_audit(event: dict[str, Any], redacted: str, policy_version: str) -> dict[str, Any]:
    """A prompt changed before it was persisted or sent: who, what kinds, under which policy."""
    return {
        "event_id": event_id(), "occurred_at": _now(), "actor": event.get("api_key_id") or "unknown",
        "action": "redact", "resource": f"request:{event['request_id']}", "decision": "redacted",
        "reason": f"PII redacted: {redacted}", "request_id": event["request_id"], "team": event.get("team"),
        "config_version": policy_version, "details": {"stage": "guard", "model": str(event.get("model"))},
    }


def audit_event(event: dict[str, Any], rejection: Rejection, policy_version: str | None) -> dict[str, Any]:
    return {
        "event_id": event_id(), "occurred_at": _now(), "actor": event.get("api_key_id") or "unknown",
        "action": "reject", "resource": f"request:{event['request_id']}", "decision": "denied",
        "reason": f"{rejection.reason_code}: {rejection.message}", "request_id": event["request_id"],
        "team": event.get("team"), "config_version": policy_version,
        "details": {"stage": rejection.stage, "model": str(event.get("model"))},
    }
