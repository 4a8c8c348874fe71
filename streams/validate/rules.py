"""Semantic validation of a decoded Request: the checks a schema cannot express.

Order matters: identity first (so the rejection can still be addressed to its caller), then ownership,
then the model, then parameters and size.
"""

from __future__ import annotations

import json
from typing import Any

from shared.deadline import DEADLINE_EXCEEDED, past_deadline_ms
from shared.guardrails.outcome import Rejection, prompt_chars
from shared.identity.keys import KEY_ID_PREFIX
from shared.policy.config import GatewayPolicy
from streamgate.catalog import ModelCatalog

STAGE = "validate"
_KEY_FORMS = ("sha256:", KEY_ID_PREFIX)


def _reject(code: str, message: str) -> Rejection:
    return Rejection(STAGE, code, message)


def check_deadline(event: dict[str, Any], now_ms: int) -> Rejection | None:
    """A request whose caller stopped waiting goes no further: under overload most of a backlog is such
    requests, and guardrails, routing and dispatch spent on them delay the ones still awaited."""
    late = past_deadline_ms(event, now_ms)
    if late is None:
        return None
    return Rejection(STAGE, DEADLINE_EXCEEDED, f"the caller's deadline passed {late} ms before the gateway "
                     "got to the request; no provider was called", status="failed", dead_letter=False)


def validate_request(event: dict[str, Any], policy: GatewayPolicy, catalog: ModelCatalog) -> Rejection | None:
    for name in ("request_id", "trace_id", "team", "project", "model"):
        if not str(event.get(name) or "").strip():
            return _reject("missing_field", f"{name} is empty")
    # sha256: as the client sends it; a key's public id once authentication (streams/identity/) named it
    if not str(event.get("api_key_id", "")).startswith(_KEY_FORMS):
        return _reject("invalid_api_key_id", "api_key_id must be a sha256: hash of the key, never the key")
    team = policy.teams.get(event["team"])
    if team is None:
        return _reject("unknown_team", f"team {event['team']!r} is not configured")
    if event["project"] not in team.projects:
        return _reject("unknown_project", f"project {event['project']!r} is not a project of {event['team']}")
    model = event["model"]
    routable = model in policy.routing.routes or (
        model in catalog and catalog.get(model).provider in policy.routing.passthrough_providers)
    if not routable:
        where = "" if model in catalog else " and is not in the model catalog"
        return _reject("unknown_model", f"model {model!r} has no route{where}")
    return _check_params(event, policy) or _check_size(event, policy)


def _check_params(event: dict[str, Any], policy: GatewayPolicy) -> Rejection | None:
    params = event.get("params") or {}
    max_tokens = params.get("max_tokens")
    if max_tokens is not None and not 1 <= max_tokens <= policy.validation.max_tokens_cap:
        return _reject("invalid_max_tokens",
                       f"max_tokens {max_tokens} outside 1..{policy.validation.max_tokens_cap}")
    temperature = params.get("temperature")
    if temperature is not None and not 0.0 <= temperature <= 2.0:
        return _reject("invalid_temperature", f"temperature {temperature} outside 0..2")
    top_p = params.get("top_p")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        return _reject("invalid_top_p", f"top_p {top_p} outside (0, 1]")
    reply = event.get("reply_partition")
    if reply is not None and reply < 0:
        return _reject("invalid_reply_partition", f"reply_partition {reply} is negative")
    deadline, created = event.get("deadline_at"), event.get("created_at") or 0
    if deadline is not None and deadline <= created:  # a caller's bug, not a late request
        return _reject("invalid_deadline", f"deadline_at {deadline} is not after created_at {created}")
    return _check_json_params(event)


#: Pass-through parameters that travel as JSON text, and the JSON type each must have.
_JSON_PARAMS: dict[str, type | tuple[type, ...]] = {
    "tools_json": list, "tool_choice_json": (str, dict), "response_schema_json": dict, "extra_json": dict}


def _check_json_params(event: dict[str, Any]) -> Rejection | None:
    """A malformed pass-through parameter is the caller's error, said here rather than by a provider."""
    params = event.get("params") or {}
    for name, kind in _JSON_PARAMS.items():
        raw = params.get(name)
        if raw is None or (name == "tool_choice_json" and raw in ("auto", "none", "required")):
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            return _reject("invalid_params", f"{name} is not valid JSON: {exc.msg}")
        if not isinstance(value, kind):
            return _reject("invalid_params", f"{name} has the wrong JSON type ({type(value).__name__})")
    for m in event.get("messages") or []:
        if (calls := m.get("tool_calls_json")) is not None:
            try:
                ok = isinstance(json.loads(calls), list)
            except json.JSONDecodeError:
                ok = False
            if not ok:
                return _reject("invalid_params", "a message's tool_calls_json is not a JSON array")
    return None


def _check_size(event: dict[str, Any], policy: GatewayPolicy) -> Rejection | None:
    messages = event.get("messages") or []
    if not messages:
        return _reject("no_messages", "a request needs at least one message")
    if len(messages) > policy.validation.max_messages:
        return _reject("too_many_messages", f"{len(messages)} messages > {policy.validation.max_messages}")
    chars = prompt_chars(event)
    if chars > policy.validation.max_prompt_chars:
        limit = policy.validation.max_prompt_chars
        return _reject("prompt_too_large", f"prompt of {chars} characters > {limit}")
    return None
