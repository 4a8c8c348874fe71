"""Window rules of the aggregator as pure logic: assignment, grace, late events, rows round trip."""

from __future__ import annotations

import pytest

from aggregation.cell import Cell, CellKey
from aggregation.state import PartitionState
from shared.traffic.telemetry import telemetry_events
from shared.usage.windows import window_bounds

T0 = 1_795_000_000_000 - 1_795_000_000_000 % 86_400_000 + 3_600_000  # 01:00 UTC on some day


def _event(at: int, cost: int = 100) -> dict:
    e = next(telemetry_events(1, start_ms=at, late_share=0))
    return e | {"ended_at": at, "cost_nanousd": cost, "team": "search", "attempt": 1}


def test_window_bounds_align_to_utc() -> None:
    assert window_bounds("1m", T0 + 61_000) == (T0 + 60_000, T0 + 120_000)
    assert window_bounds("1d", T0)[0] == T0 - 3_600_000


def test_an_event_within_grace_updates_its_own_window() -> None:
    state = PartitionState(0, grace_ms=30_000)
    state.apply(_event(T0 + 80_000))
    state.apply(_event(T0 + 50_000, cost=7))  # its minute ended 20 s before the watermark: within grace
    cell = state.cells[CellKey("1m", T0, "team", "search", 0)]
    assert cell.counts["cost_nanousd"] == 7 and cell.counts["late_events"] == 0


def test_a_late_event_is_counted_where_the_watermark_is_and_flagged() -> None:
    state = PartitionState(0, grace_ms=30_000)
    state.apply(_event(T0 + 300_000))
    state.apply(_event(T0 + 10_000, cost=5))  # its minute closed long ago
    assert CellKey("1m", T0, "team", "search", 0) not in state.cells
    now = state.cells[CellKey("1m", T0 + 300_000, "team", "search", 0)]
    assert now.counts["cost_nanousd"] == 105 and now.counts["late_events"] == 1
    hour = state.cells[CellKey("1h", T0, "team", "search", 0)]  # the hour is still open: not late there
    assert hour.counts["late_events"] == 0 and hour.counts["cost_nanousd"] == 105


def test_rows_round_trip_with_their_sketch() -> None:
    state = PartitionState(3, grace_ms=0)
    for i in range(200):
        state.apply(_event(T0 + i))
    key, cell = next((k, c) for k, c in state.take_dirty() if k.window == "1m" and k.dimension == "team")
    row = cell.to_row(key, state.watermark_ms, 0)
    key2, cell2 = Cell.from_row(row)
    assert key2 == key and cell2.counts == cell.counts
    assert cell2.quantile(0.5) == pytest.approx(cell.quantile(0.5), rel=1e-9) and row["source_partition"] == 3


def test_closed_windows_are_evicted_but_open_ones_kept() -> None:
    state = PartitionState(0, grace_ms=1_000)
    state.apply(_event(T0))
    state.take_dirty()
    state.apply(_event(T0 + 10 * 60_000))
    assert state.evict_closed() > 0
    assert CellKey("1m", T0, "team", "search", 0) not in state.cells
    assert CellKey("1d", window_bounds("1d", T0)[0], "team", "search", 0) in state.cells


def test_live_usage_forgets_minutes_no_limit_reads_any_more() -> None:
    from shared.usage.live import LiveUsage
    from streamgate.config import KafkaSettings, SecuritySettings, Settings

    # not started: no broker (nor credentials) needed to hold and prune rows
    plain = Settings(kafka=KafkaSettings(security=SecuritySettings(protocol="PLAINTEXT")))
    live = LiveUsage(plain, role="streams")
    now = T0 + 10 * 60_000
    for start in (T0, now - 60_000, now):
        live.rows[("1m", start, "team", "search")][0] = {"requests": 1}
    live.rows[("1d", T0 - 40 * 86_400_000, "team", "search")][0] = {"cost_nanousd": 1}
    live.rows[("1d", T0 - 86_400_000, "team", "search")][0] = {"cost_nanousd": 1}
    live._prune(now)
    assert sorted((w, s) for w, s, _, _ in live.rows) == [
        ("1d", T0 - 86_400_000), ("1m", now - 60_000), ("1m", now)]
    live.consumer.close()


def test_cache_answers_count_but_stay_out_of_the_provider_latency() -> None:
    state = PartitionState(0, grace_ms=0)
    for i in range(50):
        state.apply(_event(T0 + i) | {"cache_hit": False, "latency_ms": 400.0})
    for i in range(200):  # answered from the cache: almost no time, and no provider was asked
        state.apply(_event(T0 + 50 + i) | {"cache_hit": True, "latency_ms": 0.4})
    cell = state.cells[CellKey("1m", T0, "team", "search", 0)]
    assert cell.counts["attempts"] == 250 and cell.counts["cache_hits"] == 200
    assert cell.sketch.count == 50 and cell.quantile(0.5) == pytest.approx(400.0, rel=0.02)
