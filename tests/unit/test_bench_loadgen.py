"""The gateway benchmark's load generator: pacing schedule, percentiles, failure accounting, the max-rate
search, and open-loop driving (with in-process adapters: no network, no peers)."""

from __future__ import annotations

import asyncio

import pytest

from bench.__main__ import split
from bench.gateway import _ratios, parse
from bench.loadgen import (
    AdapterPath,
    FailedRequestError,
    Record,
    RunSpec,
    RunStats,
    drive,
    percentile,
    prompt,
    run_in_process,
    schedule,
    search_max,
    summarize,
)


class SlowAdapter:
    """Answers after `delay_s`; every `fail_every`-th call fails (0: never)."""

    def __init__(self, delay_s: float, fail_every: int = 0) -> None:
        self.delay_s, self.fail_every, self.calls = delay_s, fail_every, 0

    async def open(self) -> None:
        pass

    async def chat(self, model: str, prompt: str, max_tokens: int) -> None:
        self.calls += 1
        n = self.calls
        await asyncio.sleep(self.delay_s)
        if self.fail_every and n % self.fail_every == 0:
            raise FailedRequestError("http_500")

    async def close(self) -> None:
        pass


def _path(delay_s: float, fail_every: int = 0) -> AdapterPath:
    return AdapterPath("fake", f"{__name__}:SlowAdapter", {"delay_s": delay_s, "fail_every": fail_every}, "m")


def test_schedule_is_evenly_paced_for_the_duration() -> None:
    offsets = schedule(500, 2.0)
    assert len(offsets) == 1000
    assert offsets[0] == 0 and offsets[1] == pytest.approx(0.002) and offsets[-1] == pytest.approx(1.998)
    assert len(schedule(50, 0.5)) == 25
    with pytest.raises(ValueError):
        schedule(0, 1)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile([7.0], 0.99) == 7
    assert percentile([1.0, 2.0, 3.0], 0.5) == 2
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_failures_rank_as_the_timeout_and_are_counted() -> None:
    # 97 fast answers (10 ms from their scheduled start) and 3 failures that came back quickly
    records = [Record(i / 100, i / 100, i / 100 + 0.010, None) for i in range(97)]
    records += [Record(0.97 + i / 100, 0.97 + i / 100, 0.971 + i / 100, "http_500") for i in range(3)]
    stats = summarize("p", 100, 1.0, records, timeout_s=10)
    assert (stats.sent, stats.ok, stats.errors, stats.error_count) == (100, 97, {"http_500": 3}, 3)
    assert stats.p50_ms == pytest.approx(10)
    assert stats.p99_ms == 10_000  # a fast failure must not improve the tail
    assert stats.ok_p99_ms == pytest.approx(10)
    assert not stats.sustained(1000)


def test_achieved_rate_counts_only_answers_and_the_drain() -> None:
    # offered 100/s for 1 s, but answers trickle out until t=2 s: achieved is 50/s, not sustained
    records = [Record(i / 100, i / 100, 0.02 * i, None) for i in range(1, 101)]
    stats = summarize("p", 100, 1.0, records, timeout_s=10)
    assert stats.achieved_per_s == pytest.approx(100 / (2.0 - 0.01), rel=0.01)
    records = [Record(i / 100, i / 100, i / 100 + 0.001, None) for i in range(100)]
    assert summarize("p", 100, 1.0, records, timeout_s=10).sustained(1000)


def _stats(rate: float, p99_ms: float) -> RunStats:
    return RunStats("p", rate, 1.0, sent=10, ok=10, p50_ms=p99_ms / 2, p99_ms=p99_ms, achieved_per_s=rate)


def test_search_steps_up_until_the_first_failure_then_bisects() -> None:
    capacity = 620.0
    seen: list[float] = []

    def measure(rate: float) -> RunStats:
        seen.append(rate)
        return _stats(rate, 5 if rate <= capacity else 5000)

    best, runs = search_max(measure, [1000, 50, 200, 500, 2000], 1000, refine_steps=2)
    assert seen == [50, 200, 500, 1000, 750, 625]  # 2000 never tried; bisection 500..1000 -> 750 -> 625
    assert best == 500 and [r.rate for r in runs] == seen
    best, _ = search_max(measure, [50, 200, 500, 1000], 1000, refine_steps=3)
    assert best == 562  # three steps: 750 fails, 625 fails, 562 holds
    assert search_max(lambda r: _stats(r, 5000), [50, 100], 1000, refine_steps=2)[0] == 0


def test_prompts_are_about_1kb_and_distinct() -> None:
    assert len(prompt(1)) == 1024 and len(prompt(12345, 2048)) == 2048
    assert prompt(1) != prompt(2)


def test_argv_splits_into_names_and_options() -> None:
    assert split(["gateway", "--quick", "--paths", "direct,portkey"]) == (
        ["gateway"], ["--quick", "--paths", "direct,portkey"])
    assert split(["codec", "pii"]) == (["codec", "pii"], [])


async def test_open_loop_starts_requests_on_schedule_whatever_the_answers_take() -> None:
    # 20 requests at 40/s, each taking 200 ms: closed loop would take 4 s; open loop ~0.7 s
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    records = await drive(RunSpec(_path(0.2), rate=40, duration_s=0.5, timeout_s=5, warmup_requests=0))
    elapsed = loop.time() - t0
    assert len(records) == 20 and elapsed < 2.0
    stats = summarize("fake", 40, 0.5, records, timeout_s=5)
    assert stats.ok == 20 and stats.p50_ms >= 199 and stats.send_lag_p99_ms < 100
    scheduled = sorted(r.scheduled for r in records)
    assert scheduled[-1] - scheduled[0] == pytest.approx(19 / 40)


async def test_errors_and_timeouts_are_recorded_not_dropped() -> None:
    records = await drive(RunSpec(_path(0.01, fail_every=4), rate=100, duration_s=0.2, timeout_s=5,
                                  warmup_requests=0))
    assert len(records) == 20
    assert sum(r.error == "http_500" for r in records) == 5
    records = await drive(RunSpec(_path(1.0), rate=50, duration_s=0.1, timeout_s=0.05, warmup_requests=0))
    assert [r.error for r in records] == ["timeout"] * 5


def test_a_run_happens_in_a_process_of_its_own() -> None:
    stats = run_in_process(RunSpec(_path(0.001), rate=100, duration_s=0.3, timeout_s=5, warmup_requests=2))
    assert (stats.sent, stats.ok, stats.error_count) == (30, 30, 0)
    assert stats.path == "fake" and stats.p99_ms < 1000


def test_ratios_to_direct_only_where_direct_kept_up() -> None:
    o = parse(["--rates", "50,500"])
    result = {"paths_measured": ["direct", "portkey"],
              "direct_50_p50_ms": 2.0, "direct_50_p99_ms": 10.0, "direct_50_sustained": True,
              "direct_500_p50_ms": 900.0, "direct_500_p99_ms": 5000.0, "direct_500_sustained": False,
              "portkey_50_p50_ms": 5.0, "portkey_50_p99_ms": 40.0, "portkey_500_p50_ms": 950.0,
              "portkey_500_p99_ms": 6000.0}
    _ratios(result, o)
    assert result["portkey_50_p50_vs_direct"] == 2.5 and result["portkey_50_p99_vs_direct"] == 4.0
    assert "portkey_500_p50_vs_direct" not in result and "direct_500_p99_vs_direct" not in result
