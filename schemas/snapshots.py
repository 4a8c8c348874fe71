"""Snapshots that one stage publishes and another reads: usage (aggregation -> budgets, features) and
provider health (features -> routing). Plain values, so any stage may hold them without importing another.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UsageSnapshot:
    requests_last_minute: int = 0
    tokens_last_minute: int = 0
    spend_today_nanousd: int = 0
    spend_month_nanousd: int = 0



@dataclass(frozen=True, slots=True)
class HealthStats:
    p95_ms: float
    error_rate: float
    samples: int
