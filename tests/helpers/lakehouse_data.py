"""A small, realistic day of pipeline events (telemetry, responses, verdicts), landed through the real
broker and the real bronze sink, then refined into silver and gold: tables for the report to read."""

from __future__ import annotations

import random
import uuid
from typing import Any

from confluent_kafka import Producer

from lakehouse.gold import rebuild_all
from lakehouse.silver import merge_request_facts
from lakehouse.sink import BronzeSink
from schemas import make_codec
from shared.traffic.telemetry import telemetry_events
from streamgate.config import Settings
from streamgate.kafka.clients import producer_config

ENTITIES = ("EMAIL_ADDRESS", "PHONE", "CREDIT_CARD", "US_SSN", "IBAN", "PERSON")


Events = dict[str, list[dict[str, Any]]]


def pipeline_events(count: int, *, start_ms: int, span_ms: int, seed: int = 5) -> Events:
    """`count` requests: one attempt each (some fall back, some fail, some cached), one response each
    (a tenth rejected before dispatch), and PII verdicts for about one in six."""
    rng = random.Random(seed)
    out: Events = {"telemetry": [], "responses": [], "guardrail.verdicts": []}
    for attempt in telemetry_events(count, start_ms=start_ms, span_ms=span_ms, late_share=0.0, seed=seed):
        rid, at = attempt["request_id"], attempt["ended_at"]
        rejected = rng.random() < 0.1
        if not rejected:
            if attempt["provider"] == "azure" and rng.random() < 0.4:
                attempt["fallback_index"] = 1
            out["telemetry"].append(attempt)
        status = "rejected" if rejected else "ok" if attempt["status"] == "ok" else "failed"
        out["responses"].append({
            "request_id": rid, "trace_id": rid, "team": attempt["team"], "project": attempt["project"],
            "api_key_id": attempt["api_key_id"], "status": status,
            "reason_code": {"ok": None, "failed": "provider_error", "rejected": "budget_exceeded"}[status],
            "message": None, "content": "answer" if status == "ok" else None, "finish_reason": None,
            "provider": None if rejected else attempt["provider"],
            "model": None if rejected else attempt["model"],
            "target_index": None if rejected else attempt["fallback_index"],
            "cache_hit": not rejected and attempt["cache_hit"],
            "cache_kind": attempt["cache_kind"] if not rejected else None,
            "usage": {"prompt_tokens": attempt["prompt_tokens"],
                      "completion_tokens": attempt["completion_tokens"], "cached_tokens": 0,
                      "reasoning_tokens": 0},
            "cost_nanousd": 0 if rejected else attempt["cost_nanousd"],
            "latency_ms": None if rejected else attempt["latency_ms"], "created_at": at - 600,
            "completed_at": at})
        if rng.random() < 0.17:
            kinds = rng.sample(ENTITIES, rng.randint(1, 2))
            out["guardrail.verdicts"].append({
                "event_id": str(uuid.UUID(int=rng.getrandbits(128))), "request_id": rid,
                "team": attempt["team"],
                "stage": rng.choice(("input", "input", "output")), "guardrail": "pii",
                "action": "block" if "CREDIT_CARD" in kinds else "redact",
                "entities": [{"type": k, "start": 0, "end": 8, "score": 0.9, "action": "redact"}
                             for k in kinds],
                "policy_version": "v1", "reason": None, "created_at": at - 500})
    return out


EVENT_TYPES = {"telemetry": "Telemetry", "responses": "Response", "guardrail.verdicts": "GuardrailVerdict"}


def land(settings: Settings, topics: dict[str, str], events: Events) -> None:
    """Produce the events, run the bronze sink until it is idle, then silver and gold."""
    producer = Producer(producer_config(settings, client_id="report-data", role="admin"))
    for logical, records in events.items():
        codec = make_codec(topics[logical], EVENT_TYPES[logical])
        for record in records:
            producer.produce(topics[logical], codec.encode(record), record["request_id"].encode())
            producer.poll(0)
    producer.flush(30)
    quick = settings.lakehouse.model_copy(update={"flush_s": 0.5})
    settings = settings.model_copy(update={"lakehouse": quick})
    BronzeSink(settings).run(idle_exit_s=3)
    merge_request_facts(settings)
    rebuild_all(settings)
