"""The guard stage: access, budgets, content policy and PII, in that order, on one validated request.

Cheap refusals come first (access, budget) so a denied request costs no scanning; PII runs last so the
event that leaves this stage carries only redacted text.
"""

from __future__ import annotations

import json
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
    texts = scanned_texts(event["messages"])
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
        messages = with_texts(event["messages"], pii.texts)
        if messages is None:
            message = "a tool call's arguments hold PII that could not be redacted as valid JSON"
            rejection = Rejection("guard", "pii_blocked", message, audit=True)
            return GuardResult(None, rejection, budget + verdicts)
        event = dict(event, messages=messages)
        kinds = sorted({f.type for f in pii.findings if f.action == "redact"})
        event["metadata"] = {**(event.get("metadata") or {}), "guard.pii": "redact:" + "|".join(kinds)}
    return GuardResult(event, None, budget + verdicts)


def scanned_texts(messages: list[dict[str, Any]]) -> list[str]:
    """What the content rules and the PII scanner read: every message's text, then the arguments of the
    tool calls earlier assistant turns made (a caller's conversation history carries them, and they hold
    what the user said as often as the text does)."""
    texts = [m["content"] for m in messages]
    texts += [m["tool_calls_json"] for m in messages if m.get("tool_calls_json")]
    return texts


def with_texts(messages: list[dict[str, Any]], texts: list[str]) -> list[dict[str, Any]] | None:
    """`messages` with the scanner's redacted `texts` (in `scanned_texts` order) put back; None when a
    redacted tool-call list is no longer valid JSON (placeholders are JSON-safe, so only for a value the
    scanner matched across the JSON syntax itself)."""
    out = [dict(m, content=t) for m, t in zip(messages, texts, strict=False)]
    calls = iter(texts[len(messages):])
    for m in out:
        if m.get("tool_calls_json"):
            redacted = next(calls)
            if redacted != m["tool_calls_json"]:
                try:
                    json.loads(redacted)
                except ValueError:
                    return None
            m["tool_calls_json"] = redacted
    return out
