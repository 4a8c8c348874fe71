"""The demo's traffic shape: an even rate, one 50x burst, every request sent by the end."""

from __future__ import annotations

from apps.demo.pace import Pace


def test_pace_sends_everything_with_a_50x_burst() -> None:
    pace = Pace(10_000, 100.0)
    start, end = pace.burst()
    assert (start, end) == (50.0, 52.0)
    before = pace.due(start) - pace.due(start - 1)
    during = pace.due(start + 1.5) - pace.due(start + 0.5)
    assert abs(during / before - 50) < 1
    assert pace.due(0) == 1 and pace.due(100) == pace.due(1000) == 10_000
    assert all(pace.due(t / 10) <= pace.due((t + 1) / 10) for t in range(1000))  # never goes back
    assert abs(pace.due(99.99) - 10_000) <= 1
