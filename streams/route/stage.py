"""The route stage: a guarded Request in, a RoutedRequest (target + ordered fallbacks) out."""

from __future__ import annotations

import random
import time
from typing import Any

from shared.guardrails.outcome import Rejection
from shared.policy.config import GatewayPolicy
from streams.route.health import ProviderHealth
from streams.route.router import RouteDecision, route_request


def routed_event(event: dict[str, Any], decision: RouteDecision, policy: GatewayPolicy,
                 guardrail_actions: list[str]) -> dict[str, Any]:
    return {
        "request_id": event["request_id"], "trace_id": event["trace_id"],
        "session_id": event.get("session_id"),
        "team": event["team"], "project": event["project"], "api_key_id": event["api_key_id"],
        "user_id": event.get("user_id"), "requested_model": event["model"], "messages": event["messages"],
        "params": event["params"], "tags": event.get("tags") or {}, "metadata": event.get("metadata") or {},
        "region": event.get("region"), "reply_partition": event.get("reply_partition"),
        "deadline_at": event.get("deadline_at"),
        "targets": [{"provider": t.provider, "model": t.model, "region": t.region, "timeout_ms": t.timeout_ms,
                     "weight": t.weight} for t in decision.targets],
        "strategy": decision.strategy, "routing_config_version": policy.version,
        "policy_version": policy.version, "guardrail_actions": guardrail_actions,
        "created_at": event["created_at"], "routed_at": int(time.time() * 1000),
    }


def route_stage(event: dict[str, Any], policy: GatewayPolicy, health: ProviderHealth,
                rng: random.Random) -> dict[str, Any] | Rejection:
    decision = route_request(event, policy, health, rng)
    if isinstance(decision, Rejection):
        return decision
    actions = [f"{k}:{v}" for k, v in sorted((event.get("metadata") or {}).items()) if k.startswith("guard.")]
    return routed_event(event, decision, policy, actions)
