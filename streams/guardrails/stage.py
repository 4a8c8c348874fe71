"""The guard stage: access, budgets, content policy and PII, in that order, on one validated request.

Cheap refusals come first (access, budget) so a denied request costs no scanning; PII runs last so the
event that leaves this stage carries only redacted text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.guardrails.content import check_content
from shared.guardrails.outcome import Rejection
from shared.guardrails.verdicts import PiiScanner, verdict_event
from shared.identity import KeyIdentity
from shared.policy.config import GatewayPolicy
from streams.guardrails.access import check_access
from streams.guardrails.budgets import UsageReader, budget_decision


@dataclass
class GuardResult:
    event: dict[str, Any] | None
    rejection: Rejection | None = None
    verdicts: list[dict[str, Any]] = field(default_factory=list)


def guard_request(event: dict[str, Any], policy: GatewayPolicy, scan_pii: PiiScanner,
                  usage: UsageReader, now_ms: int, identity: KeyIdentity | None = None) -> GuardResult:
    """`identity`: the authenticated caller (None when authentication is off), whose key's model globs,
    rpm and budget apply on top of the team's."""
    denied = check_access(event, policy, identity)
    warnings: list[str] = []
    if denied is None:
        denied, warnings = budget_decision(event, policy, usage, now_ms, identity)
    if denied:
        return GuardResult(None, denied)
    budget = [verdict_event(event, policy, "budget", "warn", [], w) for w in warnings]
    texts = [m["content"] for m in event["messages"]]
    content = check_content(texts, policy.guardrails)
    if content:
        verdict = verdict_event(event, policy, "policy", "block", [], content.message)
        return GuardResult(None, content, [*budget, verdict])
    pii = scan_pii(texts, policy, event["team"])
    verdicts = [verdict_event(event, policy, "pii", pii.action, pii.findings, None)] if pii.findings else []
    if pii.action == "block":
        kinds = sorted({f.type for f in pii.findings if f.action == "block"})
        rejection = Rejection("guard", "pii_blocked", f"the prompt contains {', '.join(kinds)}", audit=True)
        verdicts[0]["reason"] = rejection.message
        return GuardResult(None, rejection, budget + verdicts)
    if pii.action == "redact":
        event = dict(event)
        event["messages"] = [dict(m, content=t) for m, t in zip(event["messages"], pii.texts, strict=True)]
        kinds = sorted({f.type for f in pii.findings if f.action == "redact"})
        event["metadata"] = {**(event.get("metadata") or {}), "guard.pii": "redact:" + "|".join(kinds)}
    return GuardResult(event, None, budget + verdicts)
