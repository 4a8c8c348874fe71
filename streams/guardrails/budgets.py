"""Budgets and rate limits, checked against usage that the aggregation stage maintains.

The request path only reads usage, through :class:`UsageReader`, so where usage comes from (a faust
table, the compacted aggregates topic, Feast online features) can change without touching this check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from streams.outcome import Rejection, estimate_tokens, prompt_chars
from streams.policy.config import BudgetLimit, GatewayPolicy

STAGE = "guard"


@dataclass(frozen=True, slots=True)
class UsageSnapshot:
    requests_last_minute: int = 0
    tokens_last_minute: int = 0
    spend_today_nanousd: int = 0
    spend_month_nanousd: int = 0


class UsageReader(Protocol):
    def usage(self, scope: str, now_ms: int) -> UsageSnapshot: ...


class NoUsage:
    """Until aggregation lands, usage reads as zero: limits that need history cannot trip yet."""

    def usage(self, scope: str, now_ms: int) -> UsageSnapshot:
        return UsageSnapshot()


def _scopes(event: dict[str, Any]) -> list[str]:
    return [event["team"], f"{event['team']}/{event['api_key_id']}"]


def _over(limit: BudgetLimit, used: UsageSnapshot, tokens: int) -> str | None:
    checks = (
        (limit.requests_per_minute, used.requests_last_minute + 1, "requests per minute"),
        (limit.tokens_per_minute, used.tokens_last_minute + tokens, "tokens per minute"),
        (limit.daily_nanousd, used.spend_today_nanousd, "daily spend (nano-USD)"),
        (limit.monthly_nanousd, used.spend_month_nanousd, "monthly spend (nano-USD)"),
    )
    for cap, value, what in checks:
        if cap is not None and value > cap:
            return f"{what} {value} over the limit {cap}"
    return None


def check_budget(event: dict[str, Any], policy: GatewayPolicy, usage: UsageReader,
                 now_ms: int) -> Rejection | None:
    tokens = estimate_tokens(prompt_chars(event)) + int((event.get("params") or {}).get("max_tokens") or 0)
    for scope in _scopes(event):
        limit = policy.budgets.get(scope)
        if limit is None:
            continue
        reason = _over(limit, usage.usage(scope, now_ms), tokens)
        if reason:
            return Rejection(STAGE, "budget_exceeded", f"{scope}: {reason}", audit=True)
    return None
