"""Pure logic of the gateway consumer: breaker, backoff, commit points, cache, JSON checks."""

from __future__ import annotations

import json
import random
from typing import Any

from gateway_consumer.cache import ExactCache, cache_key
from gateway_consumer.dispatch.answered import MAX_LOOKBACK_MS, SEED_MARGIN_MS, need_since_ms
from gateway_consumer.dispatch.offsets import OffsetTracker
from gateway_consumer.output_guard import json_problem
from gateway_consumer.providers import ProviderReply
from gateway_consumer.providers.base import classify_status
from gateway_consumer.reliability import CircuitBreaker, retry_delay_s
from gateway_consumer.reliability.breaker import State
from streamgate.config import BreakerSettings, RetrySettings


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_on_error_rate_then_half_opens_one_probe() -> None:
    clock = Clock()
    b = CircuitBreaker(BreakerSettings(window=4, min_calls=4, error_rate=0.5, open_s=10), clock)
    for ok in (True, False, True):
        b.record(ok)
    assert b.state is State.CLOSED  # 3 calls: below min_calls
    b.record(False)  # 2 of 4 failed = 50%
    assert b.state is State.OPEN and not b.allow()
    clock.now = 10.0
    assert b.state is State.HALF_OPEN
    assert b.allow() and not b.allow()  # exactly one probe
    b.record(False)
    assert b.state is State.OPEN
    clock.now = 20.0
    assert b.allow()
    b.record(True)
    assert b.state is State.CLOSED and b.allow()


def test_backoff_is_jittered_capped_and_honours_retry_after() -> None:
    s = RetrySettings(backoff_base_ms=100, backoff_max_ms=400, max_retry_after_s=2)
    rng = random.Random(1)
    delays = [retry_delay_s(n, s, None, rng) for n in (1, 2, 3, 4, 5)]
    assert all(d is not None for d in delays)
    assert 0.05 <= delays[0] <= 0.1 and 0.1 <= delays[1] <= 0.2
    assert all(0.2 <= d <= 0.4 for d in delays[2:])
    assert retry_delay_s(1, s, 1.5) == 1.5
    assert retry_delay_s(1, s, 30.0) is None  # too long to hold the request: fall over instead


def test_commit_point_waits_for_the_lowest_open_offset() -> None:
    t = OffsetTracker()
    for offset in (10, 11, 12, 13):
        t.add(0, offset)
    t.done(0, 12)
    t.done(0, 13)
    assert t.commit_points() == {}
    t.done(0, 10)
    assert t.commit_points() == {0: 11}
    t.done(0, 11)
    assert t.commit_points() == {0: 14}


def test_a_request_needs_its_answers_known_back_to_its_creation() -> None:
    now = 1_800_000_000_000
    assert need_since_ms(now - 5_000, now) == now - 5_000 - SEED_MARGIN_MS  # a fresh request
    assert need_since_ms(now - 600_000, now) == now - 600_000 - SEED_MARGIN_MS  # routed again, late
    assert need_since_ms(0, now) == now - MAX_LOOKBACK_MS  # a bogus created_at reads back at most this
    # a clock far ahead says nothing about when the request really came: look back the most
    assert need_since_ms(now + 2 * SEED_MARGIN_MS, now) == now - MAX_LOOKBACK_MS
    assert need_since_ms(now + SEED_MARGIN_MS // 2, now) == now - SEED_MARGIN_MS // 2


def test_exact_cache_scopes_by_team_and_expires() -> None:
    clock = Clock()
    cache = ExactCache(ttl_s=60, max_entries=2, clock=clock)
    base = {"team": "a", "requested_model": "m", "messages": [{"role": "user", "content": "hi"}],
            "params": {"temperature": 0.0}}
    key = cache_key(base)
    assert cache_key({**base, "team": "b"}) != key
    assert cache_key({**base, "params": {"temperature": 0.5}}) != key
    cache.put(key, ProviderReply("hello", "stop", 1, 1), "p", "m", "us", 0)
    assert cache.get(key) is not None
    clock.now = 61
    assert cache.get(key) is None and cache.hits == 1 and cache.misses == 1


def _fmt(response_format: str | None, schema_json: str | None = None) -> Any:
    return {"response_format": response_format, "response_schema_json": schema_json}


def test_json_checks() -> None:
    schema = json.dumps({"type": "object", "required": ["answer"]})
    assert json_problem("plain text", _fmt(None)) is None
    assert json_problem('{"answer": 1}', _fmt("json_object")) is None
    assert "not valid JSON" in (json_problem('{"answer": ', _fmt("json_object")) or "")
    assert "object" in (json_problem("[1]", _fmt("json_object")) or "")
    assert "schema" in (json_problem('{"other": 1}', _fmt(schema)) or "")
    assert json_problem('{"answer": "x"}', _fmt(schema)) is None
    # the front door's json_schema: OpenAI's `json_schema` object, validated against its `schema`
    wrapped = json.dumps({"name": "answer", "schema": {"type": "object", "required": ["answer"]}})
    assert "schema" in (json_problem('{"other": 1}', _fmt("json_schema", wrapped)) or "")
    assert json_problem('{"answer": 2}', _fmt("json_schema", wrapped)) is None
    assert "unusable" in (json_problem("{}", _fmt("{not json")) or "")


def test_status_classification() -> None:
    limited = classify_status(429, "slow down", "2")
    assert limited.error_class == "rate_limited" and limited.retryable and limited.retry_after_s == 2.0
    assert classify_status(503, "", None).retryable
    assert not classify_status(400, "bad", None).retryable
    assert classify_status(429, "", "Wed, 21 Oct 2015 07:28:00 GMT").retry_after_s is None


def test_a_restart_resumes_at_the_lowest_open_offset_and_skips_the_finished_past_it() -> None:
    """The fused worker's position record: where to resume and what not to redo, also before the first
    offset read has finished (a slow first request with rejections answered after it)."""
    from gateway_consumer.dispatch.offsets import PartitionOffsets

    offsets = PartitionOffsets()
    assert offsets.resume_point() is None
    for offset in (5, 6, 7, 8):
        offsets.add(offset)
    offsets.done(6)
    offsets.done(7)
    assert offsets.commit_point() is None, "no contiguous point yet"
    assert (offsets.resume_point(), offsets.finished_ahead()) == (5, [6, 7])
    offsets.done(5)
    assert (offsets.resume_point(), offsets.finished_ahead()) == (8, [])
    offsets.done(8)
    assert (offsets.resume_point(), offsets.finished_ahead()) == (9, [])
