"""Budgets and rate limits, checked against usage that the aggregation stage maintains.

The request path only reads usage, through :class:`UsageReader`, so where usage comes from (a faust
table, the compacted aggregates topic, Feast online features) can change without touching this check.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

from schemas.snapshots import UsageSnapshot
from shared.guardrails.outcome import Rejection, estimate_tokens, prompt_chars
from shared.policy.config import BudgetLimit, GatewayPolicy

STAGE = "guard"


class UsageReader(Protocol):
    def usage(self, scope: str, now_ms: int) -> UsageSnapshot: ...


class NoUsage:
    """Until aggregation lands, usage reads as zero: limits that need history cannot trip yet."""

    def usage(self, scope: str, now_ms: int) -> UsageSnapshot:
        return UsageSnapshot()


class AdmittedUsage:
    """Usage as the aggregator counted it, raised by what this worker admitted in the current minute.

    The aggregator counts completed requests, seconds after admission; alone it would let a burst
    through before its usage arrives (a demo run admitted 605 requests of a 150-per-minute team in 2 s).
    Counting admissions here closes that gap for the requests this worker sees; across workers the
    aggregated count, read through `inner`, is the shared floor.
    """

    def __init__(self, inner: UsageReader, reread_ms: int = 1_000) -> None:
        self.inner, self.reread_ms = inner, reread_ms
        self._minute = -1
        self._requests: dict[str, int] = {}
        self._tokens: dict[str, int] = {}
        #: The aggregator's counts are seconds behind anyway: read them once per scope and `reread_ms`
        #: (summing a month of daily partials per request was 4% of a worker's time in a profile).
        self._seen: dict[str, UsageSnapshot] = {}
        self._seen_at = -1

    def usage(self, scope: str, now_ms: int) -> UsageSnapshot:
        if now_ms // self.reread_ms != self._seen_at:
            self._seen, self._seen_at = {}, now_ms // self.reread_ms
        seen = self._seen.get(scope)
        if seen is None:
            seen = self._seen[scope] = self.inner.usage(scope, now_ms)
        self._roll(now_ms)
        return replace(seen,
                       requests_last_minute=max(seen.requests_last_minute, self._requests.get(scope, 0)),
                       tokens_last_minute=max(seen.tokens_last_minute, self._tokens.get(scope, 0)))

    def admit(self, scopes: list[str], tokens: int, now_ms: int) -> None:
        self._roll(now_ms)
        for scope in scopes:
            self._requests[scope] = self._requests.get(scope, 0) + 1
            self._tokens[scope] = self._tokens.get(scope, 0) + tokens

    def _roll(self, now_ms: int) -> None:
        minute = now_ms // 60_000
        if minute != self._minute:
            self._minute, self._requests, self._tokens = minute, {}, {}


def _scopes(event: dict[str, Any]) -> list[str]:
    return [event["team"], f"{event['team']}/{event['api_key_id']}"]


def _checks(limit: BudgetLimit, used: UsageSnapshot, tokens: int) -> list[tuple[int, int, str]]:
    checks = (
        (limit.requests_per_minute, used.requests_last_minute + 1, "requests per minute"),
        (limit.tokens_per_minute, used.tokens_last_minute + tokens, "tokens per minute"),
        (limit.daily_nanousd, used.spend_today_nanousd, "daily spend (nano-USD)"),
        (limit.monthly_nanousd, used.spend_month_nanousd, "monthly spend (nano-USD)"),
    )
    return [(cap, value, what) for cap, value, what in checks if cap is not None]


def _over(limit: BudgetLimit, used: UsageSnapshot, tokens: int) -> str | None:
    for cap, value, what in _checks(limit, used, tokens):
        if value > cap:
            return f"{what} {value} over the limit {cap}"
    return None


def _near(limit: BudgetLimit, used: UsageSnapshot, tokens: int) -> list[str]:
    return [f"{what} {value} past {limit.soft_ratio:.0%} of the limit {cap}"
            for cap, value, what in _checks(limit, used, tokens) if limit.soft_ratio * cap < value <= cap]


def check_budget(event: dict[str, Any], policy: GatewayPolicy, usage: UsageReader,
                 now_ms: int) -> Rejection | None:
    return budget_decision(event, policy, usage, now_ms)[0]


def budget_decision(event: dict[str, Any], policy: GatewayPolicy, usage: UsageReader,
                    now_ms: int) -> tuple[Rejection | None, list[str]]:
    """A hard limit rejects; a soft one (past `soft_ratio`) admits with warnings, one per limit."""
    tokens = estimate_tokens(prompt_chars(event)) + int((event.get("params") or {}).get("max_tokens") or 0)
    scopes, warnings = _scopes(event), []
    for scope in scopes:
        limit = policy.budgets.get(scope)
        if limit is None:
            continue
        used = usage.usage(scope, now_ms)
        reason = _over(limit, used, tokens)
        if reason:
            return Rejection(STAGE, "budget_exceeded", f"{scope}: {reason}", audit=True), []
        warnings += [f"{scope}: {w}" for w in _near(limit, used, tokens)]
    if isinstance(usage, AdmittedUsage):
        usage.admit(scopes, tokens, now_ms)
    return None, warnings
