"""RBAC: which teams and keys may use which models and capabilities.

A key's own model globs come with its identity (the keys topic); `teams.<team>.keys` in the gateway
policy, keyed by the key's public id (or its sha256: hash where authentication is off), can narrow or
disable a key as well.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from shared.guardrails.outcome import Rejection
from shared.identity import KeyIdentity
from shared.policy.config import GatewayPolicy

STAGE = "guard"


def check_access(event: dict[str, Any], policy: GatewayPolicy,
                 identity: KeyIdentity | None = None) -> Rejection | None:
    team = policy.teams[event["team"]]
    model = event["model"]
    if not team.may_use_model(model):
        return Rejection(STAGE, "access_denied", f"team {event['team']} may not use {model!r}", audit=True)
    if identity is not None and not identity.allows_model(model):
        return Rejection(STAGE, "access_denied", f"API key {identity.key_id} may not use {model!r}",
                         audit=True)
    key = team.keys.get(event["api_key_id"])
    if key is not None:
        if key.disabled:
            return Rejection(STAGE, "key_disabled", "this API key is disabled", audit=True)
        if not any(fnmatchcase(model, p) for p in key.models):
            return Rejection(STAGE, "access_denied", f"this API key may not use {model!r}", audit=True)
    params = event.get("params") or {}
    if params.get("stream") and "stream" not in team.capabilities:
        return Rejection(STAGE, "capability_denied", f"team {event['team']} may not stream", audit=True)
    if params.get("tools_json") and "tools" not in team.capabilities:
        return Rejection(STAGE, "capability_denied", f"team {event['team']} may not use tools", audit=True)
    fmt = params.get("response_format")
    if ((fmt and fmt != "text") or params.get("response_schema_json")) and "json" not in team.capabilities:
        return Rejection(STAGE, "capability_denied", f"team {event['team']} may not ask for JSON output",
                         audit=True)
    return None
