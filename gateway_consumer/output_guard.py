"""Output guardrails: PII in answers (the input guardrails' engine and per-team actions) and JSON checks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from gateway_consumer.providers.base import requested_format
from schemas.events import Params
from shared.guardrails.pii import scan_pii
from shared.guardrails.verdicts import verdict_event
from shared.policy.config import GatewayPolicy


@dataclass
class OutputCheck:
    content: str
    #: None when the answer may be returned; otherwise a reason code (the answer must not be).
    failure: str | None = None
    message: str | None = None
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    #: the answer's tool calls with PII redacted in their arguments (None when it made none)
    tool_calls: list[dict[str, Any]] | None = None


def json_problem(content: str, params: Params) -> str | None:
    """Why `content` does not satisfy the JSON format asked for, or None when it does (or none was)."""
    try:
        fmt = requested_format(params)
    except ValueError as exc:
        return f"the requested schema is unusable: {exc}"
    if fmt.kind == "text":
        return None
    try:
        value = json.loads(content)
    except json.JSONDecodeError as exc:
        return f"not valid JSON: {exc.msg} at position {exc.pos}"
    if fmt.kind == "json_object":
        return None if isinstance(value, dict) else "a JSON object was asked for"
    try:
        jsonschema.validate(value, fmt.schema)
    except jsonschema.ValidationError as exc:
        return f"does not match the requested schema: {exc.message}"
    except jsonschema.SchemaError as exc:
        return f"the requested schema is unusable: {exc}"
    return None


def check_output(routed: dict[str, Any], content: str, policy: GatewayPolicy,
                 tool_calls: list[dict[str, Any]] | None = None) -> OutputCheck:
    """PII in the answer's text and in the arguments of the tool calls it makes (a model fills them from
    the conversation: an e-mail address it was told goes straight into `send_mail(to=...)`)."""
    arguments = [str((c.get("function") or {}).get("arguments") or "") for c in tool_calls or []]
    pii = scan_pii([content, *arguments], policy, routed["team"])
    verdicts = [verdict_event(routed, policy, "pii", pii.action, pii.findings, None, stage="output")
                ] if pii.findings else []
    if pii.action == "block":
        kinds = sorted({f.type for f in pii.findings if f.action == "block"})
        message = f"the answer contains {', '.join(kinds)}"
        verdicts[0]["reason"] = message
        return OutputCheck(content, "output_pii_blocked", message, verdicts)
    calls = None if tool_calls is None else [
        {**c, "function": {**(c.get("function") or {}), "arguments": text}} if text != before else c
        for c, before, text in zip(tool_calls, arguments, pii.texts[1:], strict=True)]
    return OutputCheck(pii.texts[0], None, None, verdicts, calls)
