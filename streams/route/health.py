"""Live provider health, read by latency-aware routing through one small interface.

The feature store (Feast online features fed by the aggregates) will implement this; until then a
static table serves tests and the demo.
"""

from __future__ import annotations

from typing import Protocol

from schemas.snapshots import HealthStats


class ProviderHealth(Protocol):
    def get(self, provider: str, model: str) -> HealthStats | None: ...


class StaticHealth:
    """A fixed health table; unknown targets have no data (and are treated as healthy)."""

    def __init__(self, stats: dict[tuple[str, str], HealthStats] | None = None) -> None:
        self.stats = dict(stats or {})

    def get(self, provider: str, model: str) -> HealthStats | None:
        return self.stats.get((provider, model))
