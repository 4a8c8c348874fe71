"""The demo's "gateway's own added latency": answer completed minus creation, minus provider attempts,
paired whichever of a request's response and telemetry is read first."""

from __future__ import annotations

from typing import Any

import pytest

from apps.demo.observe import Outcomes


def _attempt(rid: str, ms: float, status: str = "ok", cache_hit: bool = False) -> dict[str, Any]:
    return {"request_id": rid, "latency_ms": ms, "status": status, "cache_hit": cache_hit}


def test_pairs_in_either_order_and_sums_failed_attempts() -> None:
    o = Outcomes()
    o.provider_attempt(_attempt("a", 40.0, "error"))  # a retried attempt is provider time too
    o.provider_attempt(_attempt("a", 50.0))
    o.provider_answered("a", 100.0)  # response read after its telemetry
    o.provider_answered("b", 30.0)  # response read before its telemetry
    assert o.gateway_ms.count == 1
    o.provider_attempt(_attempt("b", 25.0))
    assert o.gateway_ms.count == 2
    assert o.gateway_ms.get_quantile_value(0.0) == pytest.approx(5.0, rel=0.02)
    assert o.gateway_ms.get_quantile_value(1.0) == pytest.approx(10.0, rel=0.02)
    assert not (o._gross_ms or o._provider_ms or o._attempts_ms)


def test_cache_hits_and_settled_requests_hold_nothing() -> None:
    o = Outcomes()
    o.provider_attempt(_attempt("hit", 1.0, cache_hit=True))
    o.provider_attempt(_attempt("failed", 20.0, "error"))
    o.settled("failed")
    assert o.gateway_ms.count == 0
    assert not (o._gross_ms or o._provider_ms or o._attempts_ms)


def test_an_answer_counts_from_its_creation_to_its_completion_not_to_when_it_was_read() -> None:
    """The demo reads its answers only after sending everything: the time of that read measured the run's
    length (p50 29 s in a 60 s demo), not the gateway."""
    from types import SimpleNamespace

    from apps.demo.observe import OutcomeWatcher

    o = Outcomes()
    o.provider_attempt(_attempt("r", 200.0))
    answer = {"request_id": "r", "status": "ok", "cache_hit": False, "latency_ms": 210.0,
              "created_at": 1_000_000, "completed_at": 1_000_215}
    OutcomeWatcher._response(SimpleNamespace(outcomes=o), answer)  # type: ignore[arg-type]
    assert o.gateway_ms.count == 1
    assert o.gateway_ms.get_quantile_value(0.5) == pytest.approx(15.0, rel=0.02)
