"""What a guardrail found and decided: findings, the PII outcome, and the GuardrailVerdict event.

Input guardrails (the request path) and output guardrails (the dispatcher) both emit verdicts, so the
event's shape lives here, once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from shared.guardrails.outcome import event_id
from shared.policy.config import GatewayPolicy


@dataclass(frozen=True, slots=True)
class Finding:
    message_index: int
    type: str
    start: int
    end: int
    score: float
    action: str


@dataclass(frozen=True, slots=True)
class PiiOutcome:
    texts: list[str]
    findings: list[Finding]
    action: str  # allow | redact | block


class PiiScanner(Protocol):
    """Scan and redact the texts of one request under the team's actions (the PII engine implements it)."""

    def __call__(self, texts: list[str], policy: GatewayPolicy, team: str) -> PiiOutcome: ...


def verdict_event(event: dict[str, Any], policy: GatewayPolicy, guardrail: str, action: str,
                  findings: list[Finding], reason: str | None, stage: str = "input") -> dict[str, Any]:
    """A GuardrailVerdict event; input and output guardrails (gateway_consumer) share it."""
    return {
        "event_id": event_id(), "request_id": event["request_id"], "team": event["team"],
        "stage": stage, "guardrail": guardrail, "action": action,
        "entities": [{"type": f.type, "start": f.start, "end": f.end, "score": f.score, "action": f.action}
                     for f in findings],
        "policy_version": policy.version, "reason": reason, "created_at": int(time.time() * 1000),
    }
