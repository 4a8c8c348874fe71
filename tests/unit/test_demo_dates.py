"""The demo refines and checks the dates its run landed on: every UTC date from its start to now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apps.demo.run import _dates_since


def test_a_run_that_crossed_midnight_covers_both_dates() -> None:
    now = datetime.now(UTC)
    started = now - timedelta(days=1, minutes=5)
    dates = _dates_since(int(started.timestamp() * 1000))
    assert dates[0] == started.date().isoformat() and dates[-1] == now.date().isoformat()
    assert len(dates) == (now.date() - started.date()).days + 1 == len(set(dates))


def test_a_run_started_now_covers_today_only() -> None:
    assert _dates_since(int(datetime.now(UTC).timestamp() * 1000)) == [datetime.now(UTC).date().isoformat()]
