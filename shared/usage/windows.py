"""Tumbling windows, aligned to UTC, by event time."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

WINDOWS: dict[str, int] = {"1m": 60_000, "1h": 3_600_000, "1d": 86_400_000}
DIMENSIONS = ("team", "project", "api_key", "model", "provider")


def window_bounds(window: str, at_ms: int) -> tuple[int, int]:
    size = WINDOWS[window]
    start = at_ms - at_ms % size
    return start, start + size


def month_start_ms(at_ms: int) -> int:
    """The start of the UTC calendar month `at_ms` falls in (monthly budgets and spend)."""
    now = datetime.fromtimestamp(at_ms / 1000, UTC)
    return calendar.timegm((now.year, now.month, 1, 0, 0, 0)) * 1000


def dimension_values(event: dict[str, object]) -> tuple[tuple[str, str], ...]:
    """The five rows one telemetry event counts in; a project is named within its team."""
    return (
        ("team", str(event["team"])),
        ("project", f"{event['team']}/{event['project']}"),
        ("api_key", str(event["api_key_id"])),
        ("model", f"{event['provider']}/{event['model']}"),
        ("provider", str(event["provider"])),
    )
