"""The latency benchmark's floor (bench/bare_relay.py) answers with a valid Response, and the report
compares the gateway with it only at the rates both ran."""

from __future__ import annotations

from bench.bare_relay import answer_for
from bench.latency import _floor_keys
from schemas import make_codec
from streamgate.client import build_request


def test_the_bare_relays_answer_is_a_response_to_its_request() -> None:
    request = build_request(team="search", project="ranker", model="gpt-4o-mini", api_key="k",
                            messages=[{"role": "user", "content": "hi"}], reply_partition=0).to_event()
    codec = make_codec("responses", "Response", None)
    answer = codec.decode(codec.encode(answer_for(request)))
    assert (answer["request_id"], answer["status"], answer["created_at"]) == (
        request["request_id"], "ok", request["created_at"])


def _run(rate: float, p99: float, cpu: dict[str, float], answered: int = 10) -> dict[str, object]:
    return {"rate": rate, "sent": 10, "answered": answered, "total": {"p50": p99 / 2, "p99": p99},
            "cpu_ms_per_request": cpu}


def test_floor_keys_compare_cpu_at_the_rates_both_ran() -> None:
    ours = [_run(500, 20, {"gateway": 0.8, "broker": 0.4}), _run(2000, 900, {"gateway": 0.6, "broker": 0.3})]
    floor = [_run(500, 40, {"gateway": 0.2, "broker": 0.4}), _run(2000, 300, {"gateway": 0.2, "broker": 0.3}),
             _run(3000, 80, {"gateway": 0.1, "broker": 0.2}, answered=9)]
    result: dict[str, object] = {}
    _floor_keys(result, ours, floor)
    assert result["floor_max_rate_p99_under_100ms"] == 500  # 3,000/s lost an answer
    assert result["gateway_cpu_over_floor_500"] == 4.0 and result["pipeline_cpu_over_floor_2000"] == 1.8
    assert result["floor_total_2000_p99_ms"] == 300 and "gateway_cpu_over_floor_3000" not in result
