"""Choose a request's target and ordered fallback chain from the routing config.

Steps, each a filter or an ordering: find the route for the requested model or alias, pick the candidate
targets (conditions), order them (strategy), append fallbacks, then drop targets the team may not use and
targets outside the request's region. An empty chain is a rejection that says which filter emptied it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from shared.guardrails.outcome import Rejection
from shared.policy.config import GatewayPolicy, Route, Target
from streams.route.conditions import matches, request_view
from streams.route.health import ProviderHealth

STAGE = "route"
UNHEALTHY_ERROR_RATE = 0.5


@dataclass(frozen=True, slots=True)
class RouteDecision:
    strategy: str
    targets: list[Target]


def _weighted_order(targets: list[Target], rng: random.Random) -> list[Target]:
    """Weighted sampling without replacement: the first is the load-balanced pick, the rest its fallbacks."""
    pool = [t for t in targets if t.weight > 0]
    ordered: list[Target] = []
    while pool:
        pick = rng.choices(pool, weights=[t.weight for t in pool])[0]
        ordered.append(pick)
        pool.remove(pick)
    return ordered + [t for t in targets if t.weight <= 0]


def _latency_order(route: Route, targets: list[Target], health: ProviderHealth) -> list[Target]:
    """Healthy targets by p95, then targets without data (config order), then degraded ones."""
    def key(item: tuple[int, Target]) -> tuple[int, float, int]:
        index, t = item
        stats = health.get(t.provider, t.model)
        if stats is None:
            return (0, float("inf"), index)
        degraded = stats.error_rate >= UNHEALTHY_ERROR_RATE or (
            route.max_p95_ms is not None and stats.p95_ms > route.max_p95_ms)
        return (int(degraded), stats.p95_ms, index)
    return [t for _, t in sorted(enumerate(targets), key=key)]


def _candidates(route: Route, event: dict[str, Any], health: ProviderHealth,
                rng: random.Random) -> list[Target]:
    targets = route.targets
    if route.strategy == "conditional":
        view = request_view(event)
        targets = next((c.targets for c in route.conditions if matches(c.when, view)), route.targets)
    if route.strategy == "loadbalance":
        targets = _weighted_order(targets, rng)
    elif route.strategy == "latency":
        targets = _latency_order(route, targets, health)
    chain: list[Target] = []
    seen: set[tuple[str, str, str, int, float]] = set()  # all of a Target's fields: pydantic's == is slow
    for t in [*targets, *route.fallbacks]:
        key = (t.provider, t.model, t.region, t.timeout_ms, t.weight)
        if key not in seen:
            seen.add(key)
            chain.append(t)
    return chain


def route_request(event: dict[str, Any], policy: GatewayPolicy, health: ProviderHealth,
                  rng: random.Random) -> RouteDecision | Rejection:
    route = policy.routing.routes.get(event["model"])
    if route is None:
        return Rejection(STAGE, "unknown_model", f"no route for model {event['model']!r}")
    chain = _candidates(route, event, health, rng)
    team = policy.teams[event["team"]]
    allowed = [t for t in chain if team.may_use_provider(t.provider) and team.may_use_model(t.model)]
    if not allowed:
        message = f"team {event['team']} may use none of the targets of {event['model']!r}"
        return Rejection(STAGE, "access_denied", message, audit=True)
    region = event.get("region")
    if region:
        allowed = [t for t in allowed if t.region == region]
        if not allowed:
            return Rejection(STAGE, "no_target_in_region",
                             f"no target of {event['model']!r} serves region {region!r}", audit=True)
    return RouteDecision(route.strategy, allowed)
