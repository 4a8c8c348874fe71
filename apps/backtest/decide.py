"""One recorded request's request-path decision under a policy, by the live stage functions.

The request path decides in this order: validate, access, budgets, content rules, PII, route
(streams/pipeline.py). A backtest calls the same functions (`validate_request`, `check_access`,
`guard_request`, `route_request`, `budget_decision`) on the request as the lakehouse stored it. Three
inputs cannot come from the stored request itself, and are replayed instead:

- PII: the stored text is already redacted, so rescanning it would find nothing the live path redacted.
  The live scanner's findings are recorded (input verdicts, one entity type each), and
  :func:`recorded_scanner` hands them to `guard_request` in place of the scanner, with the policy's
  action for each type. The decision is therefore exact for PII rules.
- Budgets: usage depends on everything admitted before, so they are decided in time order by
  :class:`ReplayUsage` (apps/backtest/replay.py); here, `guard_request` sees no usage, and
  :attr:`Decision.pre_budget` says whether the request stopped before the budget check.
- Routing state: latency routing reads provider health at the request's time (point in time, from the
  feature tables), and load balancing draws from :class:`FixedDraw`, one draw per request, the same for
  every policy compared.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.guardrails.outcome import Rejection
from shared.guardrails.verdicts import Finding, PiiOutcome, PiiScanner
from shared.policy.config import GatewayPolicy
from streamgate.catalog import ModelCatalog
from streams.guardrails.access import check_access
from streams.guardrails.budgets import NoUsage
from streams.guardrails.stage import guard_request
from streams.route.health import ProviderHealth
from streams.route.router import RouteDecision, route_request
from streams.validate.rules import validate_request

ADMITTED = ""
_SEVERITY = {"allow": 0, "redact": 1, "block": 2}


@dataclass(frozen=True, slots=True)
class Decision:
    """What the request path decides for one request: admitted to its first target, or rejected."""

    stage: str  # "" when admitted
    reason: str  # reason code, "" when admitted
    target: str  # provider/model of the first target, "" when rejected
    #: rejected before the budget check (validation or access): budgets cannot change the outcome
    pre_budget: bool = False

    @property
    def admitted(self) -> bool:
        return self.reason == ADMITTED


class FixedDraw(random.Random):
    """A `random.Random` whose draws are all `u`: a load-balanced pick made from the request's own draw,
    so two policies with the same targets and weights pick the same target for it."""

    def __init__(self, u: float = 0.5) -> None:
        super().__init__(0)
        self.u = u

    def random(self) -> float:
        return self.u


def recorded_scanner(entities: Sequence[str]) -> PiiScanner:
    """A PII scanner that reports what the live scanner found (entity types), under `policy`'s actions.
    The texts are returned as stored (already redacted where the live policy redacted)."""

    def scan(texts: list[str], policy: GatewayPolicy, team: str) -> PiiOutcome:
        findings = [Finding(0, kind, 0, 0, 1.0, policy.pii_action(team, kind)) for kind in entities]
        worst = max((f.action for f in findings), key=_SEVERITY.__getitem__, default="allow")
        return PiiOutcome(list(texts), findings, worst)

    return scan


def _rejected(rejection: Rejection, *, pre_budget: bool = False) -> Decision:
    return Decision(rejection.stage, rejection.reason_code, "", pre_budget)


def decide(
    event: dict[str, Any],
    policy: GatewayPolicy,
    catalog: ModelCatalog,
    entities: Sequence[str],
    health: ProviderHealth,
    draw: float = 0.5,
) -> Decision:
    """The decision for `event` (a stored Request, authenticated: `api_key_id` is its key's id), with
    budgets left to the caller (see the module doc). Key identities' own limits (rpm, max_budget_usd)
    are not part of a policy and are not replayed."""
    rejection = validate_request(event, policy, catalog)
    if rejection is not None:
        return _rejected(rejection, pre_budget=True)
    denied = check_access(event, policy)
    if denied is not None:
        return _rejected(denied, pre_budget=True)
    guarded = guard_request(event, policy, recorded_scanner(entities), NoUsage(), int(event["created_at"]))
    if guarded.rejection is not None or guarded.event is None:
        assert guarded.rejection is not None
        return _rejected(guarded.rejection)
    routed = route_request(guarded.event, policy, health, FixedDraw(draw))
    if isinstance(routed, Rejection):
        return _rejected(routed)
    return Decision("", ADMITTED, first_target(routed))


def first_target(decision: RouteDecision) -> str:
    target = decision.targets[0]
    return f"{target.provider}/{target.model}"
