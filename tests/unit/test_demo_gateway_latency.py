"""The demo's "gateway's own added latency": answer readable minus creation, minus provider attempts,
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
