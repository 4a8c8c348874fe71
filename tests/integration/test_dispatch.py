"""The gateway consumer against the simulator, through the real broker: one dispatcher process per test.

Each scenario uses its own simulator model name, so profiles set for one do not leak into another.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamgate.catalog import default_catalog
from streamgate.config import Settings
from tests.conftest import free_port
from tests.helpers.dispatch import OPEN_S, DispatchRig, routed

pytestmark = [pytest.mark.kafka]


@pytest.fixture
def rig(settings: Settings, topics: dict[str, str], tmp_path: Path) -> Iterator[DispatchRig]:
    rig = DispatchRig(settings, topics, tmp_path, free_port())
    rig.simulator.start()
    rig.start_dispatcher()
    try:
        yield rig
    finally:
        rig.close()


def _run(rig: DispatchRig, events: list[dict], timeout_s: float = 60, linger_s: float = 1.0) -> None:
    rig.send(events)
    rig.collect({e["request_id"] for e in events}, timeout_s=timeout_s, linger_s=linger_s)


def test_success_emits_one_response_and_priced_telemetry(rig: DispatchRig) -> None:
    events = [routed([{"model": "sim-small"}], f"question {i}") for i in range(20)]
    _run(rig, events)
    for e in events:
        [response] = rig.responses[e["request_id"]]
        assert response["status"] == "ok" and response["content"]
        assert response["provider"] == "sim" and response["model"] == "sim-small"
        [attempt] = rig.telemetry[e["request_id"]]
        assert attempt["status"] == "ok" and attempt["prompt_tokens"] > 0
        # priced exactly, at the prices in effect when the attempt started (config/catalog/price_changes.csv)
        catalog = default_catalog()
        prices = catalog.priced_at(catalog.get("sim-small"), attempt["started_at"])
        assert attempt["price_version"] == prices.source and prices.source.startswith("local")
        assert attempt["cost_nanousd"] == prices.cost_nanousd(
            attempt["prompt_tokens"], attempt["completion_tokens"], attempt["cached_tokens"]) > 0
        assert response["cost_nanousd"] == attempt["cost_nanousd"]


def test_retry_then_success_on_server_errors(rig: DispatchRig) -> None:
    rig.simulator.set_profile("flaky", error_rate=0.5, median_ms=5, p99_ms=5)
    events = [routed([{"model": "flaky"}], f"q{i}") for i in range(30)]
    _run(rig, events)
    retried = [e for e in events if len(rig.telemetry[e["request_id"]]) > 1]
    assert retried, "with a 50% error rate some requests must have been retried"
    for e in retried:
        attempts = rig.telemetry[e["request_id"]]
        assert [a["attempt"] for a in attempts] == list(range(1, len(attempts) + 1))
        assert attempts[0]["status"] == "error" and attempts[0]["error_class"] == "server_error"
    assert all(len(rig.responses[e["request_id"]]) == 1 for e in events)


def test_fallback_on_error_and_on_latency(rig: DispatchRig) -> None:
    rig.simulator.set_profile("broken", error_rate=1.0, median_ms=1, p99_ms=1)
    rig.simulator.set_profile("slow", median_ms=3000, p99_ms=3000)
    on_error = routed([{"model": "broken"}, {"model": "sim-small"}], "fall over on error")
    on_latency = routed([{"model": "slow", "timeout_ms": 300}, {"model": "sim-small"}], "over on latency")
    _run(rig, [on_error, on_latency])
    [r1] = rig.responses[on_error["request_id"]]
    assert r1["status"] == "ok" and r1["target_index"] == 1 and r1["model"] == "sim-small"
    classes = [a["error_class"] for a in rig.telemetry[on_error["request_id"]]]
    assert classes[:-1] == ["server_error"] * 3 and classes[-1] is None  # 3 attempts, then the fallback
    [r2] = rig.responses[on_latency["request_id"]]
    assert r2["status"] == "ok" and r2["target_index"] == 1
    first = rig.telemetry[on_latency["request_id"]][0]
    assert first["error_class"] == "timeout" and first["model"] == "slow"


def test_all_targets_failing_gives_a_failure_response(rig: DispatchRig) -> None:
    rig.simulator.set_profile("dead", error_rate=1.0, median_ms=1, p99_ms=1)
    event = routed([{"model": "dead"}], "nobody home")
    _run(rig, [event])
    [response] = rig.responses[event["request_id"]]
    assert response["status"] == "failed" and response["reason_code"] == "all_targets_failed"
    assert "server_error" in (response["message"] or "")


def test_rate_limit_honours_retry_after(rig: DispatchRig) -> None:
    rig.simulator.set_profile("limited", rate_limit_rate=1.0, retry_after_s=0.4, median_ms=1, p99_ms=1)
    event = routed([{"model": "limited"}, {"model": "sim-small"}], "429 please")
    _run(rig, [event])
    attempts = rig.telemetry[event["request_id"]]
    limited = [a for a in attempts if a["model"] == "limited"]
    assert [a["http_status"] for a in limited] == [429, 429, 429]
    gaps = [(b["started_at"] - a["ended_at"]) for a, b in itertools.pairwise(limited)]
    assert all(gap >= 350 for gap in gaps), f"retries did not wait for Retry-After: {gaps} ms"
    assert rig.responses[event["request_id"]][0]["model"] == "sim-small"


def test_circuit_breaker_opens_half_opens_and_closes(rig: DispatchRig) -> None:
    rig.simulator.set_profile("cb", error_rate=1.0, median_ms=1, p99_ms=1)
    first = [routed([{"model": "cb"}, {"model": "sim-small"}], f"cb {i}") for i in range(6)]
    for n, e in enumerate(first):  # one at a time, so the breaker sees each outcome before the next request
        _run(rig, [e], linger_s=0)
        if n == 3:
            opened = time.monotonic()  # the 4th failed call opened it
    assert time.monotonic() - opened < OPEN_S, f"too slow to observe the open state (open_s = {OPEN_S})"
    calls_when_open = rig.simulator.stats()["cb"]["error"]
    # breaker: min_calls 4 of window 8 at 50% -> open after the 4th failed call; later requests skip it
    assert calls_when_open == 4
    assert all(rig.responses[e["request_id"]][0]["model"] == "sim-small" for e in first)
    skipped = first[-1]
    assert all(a["model"] == "sim-small" for a in rig.telemetry[skipped["request_id"]])
    rig.simulator.set_profile("cb", error_rate=0.0)
    time.sleep(max(0.0, opened + OPEN_S + 0.2 - time.monotonic()))  # then the next request is the probe
    probe = routed([{"model": "cb"}, {"model": "sim-small"}], "probe")
    _run(rig, [probe])
    assert rig.responses[probe["request_id"]][0]["model"] == "cb"
    after = routed([{"model": "cb"}], "closed again")
    _run(rig, [after])
    assert rig.responses[after["request_id"]][0]["model"] == "cb"


def test_streaming_is_assembled_and_ttft_recorded(rig: DispatchRig) -> None:
    rig.simulator.set_profile("streamy", median_ms=200, p99_ms=200, ttft_share=0.25)
    event = routed([{"model": "streamy"}], "stream it", stream=True)
    _run(rig, [event])
    [response] = rig.responses[event["request_id"]]
    [attempt] = rig.telemetry[event["request_id"]]
    assert response["status"] == "ok" and len(response["content"].split()) >= 19
    assert attempt["stream"] and attempt["usage_source"] == "provider"
    assert attempt["ttft_ms"] is not None and 30 <= attempt["ttft_ms"] < attempt["latency_ms"]


def test_anthropic_adapter(rig: DispatchRig) -> None:
    event = routed([{"provider": "sim_anthropic", "model": "sim-small"}], "hello claude")
    _run(rig, [event])
    [response] = rig.responses[event["request_id"]]
    assert response["status"] == "ok" and response["provider"] == "sim_anthropic"
    assert response["usage"]["completion_tokens"] > 0


def test_exact_cache_answers_a_repeat_without_calling_the_provider(rig: DispatchRig) -> None:
    first = routed([{"model": "cached"}], "the same question", temperature=0.0)
    _run(rig, [first])
    repeat = routed([{"model": "cached"}], "the same question", temperature=0.0)
    other_team = routed([{"model": "cached"}], "the same question", temperature=0.0, team="research")
    _run(rig, [repeat, other_team])
    [hit] = rig.responses[repeat["request_id"]]
    assert hit["cache_kind"] == "exact" and hit["content"] == rig.responses[first["request_id"]][0]["content"]
    assert hit["cost_nanousd"] == 0 and rig.telemetry[repeat["request_id"]][0]["cache_hit"]
    assert not rig.responses[other_team["request_id"]][0]["cache_hit"]  # scoped per team
    assert rig.simulator.stats()["cached"]["ok"] == 2


def test_no_provider_attempt_starts_after_the_callers_deadline(rig: DispatchRig) -> None:
    """A caller who stopped waiting is not served and billed later: a request already past its deadline
    is answered `deadline_exceeded` without a call (not even from the cache), and a deadline that passes
    during an attempt stops the retries and the fallback; the same request without one falls over."""
    rig.simulator.set_profile("dl-slow", median_ms=3000, p99_ms=3000)  # past its target's 2.5 s timeout
    warm = routed([{"model": "dl-cached"}], "asked before", temperature=0.0)
    _run(rig, [warm])
    now = int(time.time() * 1000)
    late = routed([{"model": "dl-cached"}], "asked before", temperature=0.0) | {"deadline_at": now - 1000}
    slow = {"model": "dl-slow", "timeout_ms": 2500}
    passes = routed([slow, {"model": "sim-small"}], "too slow") | {"deadline_at": now + 2000}
    control = routed([slow, {"model": "sim-small"}], "too slow, no deadline")
    _run(rig, [late, passes, control], timeout_s=90)
    [expired] = rig.responses[late["request_id"]]
    assert (expired["status"], expired["reason_code"], expired["cost_nanousd"]) == (
        "failed", "deadline_exceeded", 0)
    assert "no provider was called" in expired["message"] and not expired["cache_hit"]
    assert late["request_id"] not in rig.telemetry
    assert rig.simulator.stats()["dl-cached"]["ok"] == 1  # the warm-up only
    [stopped] = rig.responses[passes["request_id"]]
    assert (stopped["status"], stopped["reason_code"]) == ("failed", "deadline_exceeded")
    [attempt] = rig.telemetry[passes["request_id"]]  # no retry, no fallback after the deadline
    assert (attempt["model"], attempt["error_class"]) == ("dl-slow", "timeout")
    [fell_over] = rig.responses[control["request_id"]]
    assert fell_over["status"] == "ok" and fell_over["model"] == "sim-small"


def test_a_deadline_that_passes_while_waiting_for_a_provider_slot_calls_nothing(rig: DispatchRig) -> None:
    """At a provider's `max_concurrency` (1 here) calls queue for a slot: one whose caller's deadline
    passed meanwhile is answered `deadline_exceeded` without the call."""
    _run(rig, [routed([{"model": "sim-small"}], "the dispatcher is up and reading")])
    rig.simulator.set_profile("dl-hold", median_ms=2500, p99_ms=2500)
    narrow = {"provider": "sim_narrow", "model": "dl-hold"}
    holding = routed([narrow], "holds the only slot")
    rig.send([holding])
    time.sleep(0.5)  # its call has begun
    queued = routed([narrow], "waits for it") | {"deadline_at": int(time.time() * 1000) + 1000}
    _run(rig, [queued], timeout_s=90)
    rig.collect({holding["request_id"]}, timeout_s=60)
    assert rig.responses[holding["request_id"]][0]["status"] == "ok"
    [expired] = rig.responses[queued["request_id"]]
    assert (expired["status"], expired["reason_code"], expired["cost_nanousd"]) == (
        "failed", "deadline_exceeded", 0)
    assert queued["request_id"] not in rig.telemetry  # no attempt was made
    assert rig.simulator.stats()["dl-hold"]["ok"] == 1


def test_output_pii_redacted_and_json_checked(rig: DispatchRig) -> None:
    leak = routed([{"model": "sim-small"}], "ECHO: write to jane.roe@example.com or 4111 1111 1111 1111")
    rig.simulator.set_profile("badjson", invalid_json_rate=1.0)
    bad = routed([{"model": "badjson"}], "give me json", response_format="json_object")
    good = routed([{"model": "sim-small"}], "give me json", response_format=json.dumps(
        {"type": "object", "required": ["answer"]}))
    _run(rig, [leak, bad, good])
    [r] = rig.responses[leak["request_id"]]
    assert "jane.roe@example.com" not in r["content"] and "<EMAIL_1>" in r["content"]
    assert "<CREDIT_CARD_1>" in r["content"]
    [verdict] = rig.verdicts[leak["request_id"]]
    assert verdict["stage"] == "output"
    assert {e["type"] for e in verdict["entities"]} == {"EMAIL", "CREDIT_CARD"}
    [failed] = rig.responses[bad["request_id"]]
    assert failed["status"] == "failed" and failed["reason_code"] == "invalid_json"
    assert [a["error_class"] for a in rig.telemetry[bad["request_id"]]] == ["invalid_json", "invalid_json"]
    assert json.loads(rig.responses[good["request_id"]][0]["content"])["answer"]


def test_undecodable_routed_record_is_dead_lettered(rig: DispatchRig, topics: dict[str, str]) -> None:
    rig.producer.produce(topics["requests.routed"], b"\x00garbage", b"k")
    event = routed([{"model": "sim-small"}], "after the garbage")
    _run(rig, [event])
    assert rig.responses[event["request_id"]][0]["status"] == "ok"  # the process kept running


@pytest.mark.slow
def test_kill_9_mid_flight_then_restart_answers_each_request_exactly_once(rig: DispatchRig) -> None:
    rig.simulator.set_profile("steady", median_ms=150, p99_ms=400)
    events = [routed([{"model": "steady"}], f"kill test {i}") for i in range(1500)]
    rig.send(events)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(rig.responses) < 300:  # answered some, more in flight
        rig.collect(set(), timeout_s=0.5, linger_s=0)
    assert rig.proc is not None
    os.kill(rig.proc.pid, signal.SIGKILL)
    rig.proc.wait(10)
    rig.start_dispatcher()
    rig.collect({e["request_id"] for e in events}, timeout_s=180, linger_s=5)
    missing = [e for e in events if e["request_id"] not in rig.responses]
    doubled = [e for e in events if len(rig.responses[e["request_id"]]) > 1]
    assert not missing, f"{len(missing)} requests were never answered"
    assert not doubled, f"{len(doubled)} requests were answered twice"


def test_semantic_cache_answers_a_paraphrase_but_not_a_different_question(rig: DispatchRig) -> None:
    def ask(text: str) -> dict:
        return routed([{"model": "faq"}], text, team="support", temperature=0.0)

    first = ask("How do I reset my password in Kafka?")
    _run(rig, [first])
    paraphrase = ask("How can I reset my password in Kafka?")
    other_product = ask("How do I reset my password in Redis?")
    negated = ask("Why can I not reset my password in Kafka?")
    # one at a time: an embedder that is busy with one text may shed the next (by design, under load),
    # and a shed request skips the semantic lookup; this test is about the decision, not the shedding
    for event in (paraphrase, other_product, negated):
        _run(rig, [event])
    [hit] = rig.responses[paraphrase["request_id"]]
    assert hit["cache_kind"] == "semantic"
    assert hit["content"] == rig.responses[first["request_id"]][0]["content"]
    assert not rig.responses[other_product["request_id"]][0]["cache_hit"]
    assert not rig.responses[negated["request_id"]][0]["cache_hit"]
    assert rig.simulator.stats()["faq"]["ok"] == 3


def test_a_cache_hit_serves_the_redacted_answer_never_the_providers_raw_one(rig: DispatchRig) -> None:
    """Team support redacts e-mail addresses in answers; the cache keeps the answer as it was let
    through, so a hit (served without another check) carries the redaction too."""
    def ask() -> dict:
        return routed([{"model": "sim-small"}], "ECHO: write to jane.roe@example.com", team="support",
                      temperature=0.0)

    first, again = ask(), ask()
    _run(rig, [first])
    _run(rig, [again])
    [miss], [hit] = rig.responses[first["request_id"]], rig.responses[again["request_id"]]
    assert not miss["cache_hit"] and hit["cache_hit"] and hit["cache_kind"] in (None, "exact")
    assert "<EMAIL_1>" in miss["content"] and hit["content"] == miss["content"]
    assert "jane.roe" not in hit["content"]


def test_the_request_paths_rejections_are_answered_exactly_once(rig: DispatchRig,
                                                                topics: dict[str, str]) -> None:
    """The request path is at-least-once: after a crash it may reject a replayed request again. Its
    rejections reach `responses` through the dispatcher, which answers each request id once."""
    from schemas import make_codec
    from shared.guardrails.outcome import Rejection
    from streams.io import rejected_response

    denied = routed([{"model": "sim-small"}], "denied")
    rejection = rejected_response(denied, Rejection("guard", "model_not_allowed", "team may not use it"))
    codec = make_codec(topics["requests.rejected"], "Response")
    for _ in range(2):  # the same rejection twice, as a replay would write it
        rig.producer.produce(topics["requests.rejected"], codec.encode(rejection),
                             denied["request_id"].encode())
    rig.producer.flush(10)
    ok = routed([{"model": "sim-small"}], "allowed")
    _run(rig, [ok], linger_s=0)
    rig.collect({denied["request_id"]}, linger_s=2.0)
    [answer] = rig.responses[denied["request_id"]]
    assert answer["status"] == "rejected" and answer["reason_code"] == "model_not_allowed"
    assert rig.telemetry[denied["request_id"]] == [], "a rejection never reached a provider"
    assert [r["status"] for r in rig.responses[ok["request_id"]]] == ["ok"]


def _dispatch_member(rig: DispatchRig) -> str | None:
    """The member id of the dispatch group's one member once it holds partitions, else None."""
    from confluent_kafka.admin import AdminClient

    from streamgate.kafka.clients import admin_config

    group = rig.settings.kafka.topic_prefix + rig.settings.dispatch.group_id
    admin = AdminClient(admin_config(rig.settings, role="admin"))  # held: its futures die with it
    description = admin.describe_consumer_groups([group])[group].result(10)
    held = [m.member_id for m in description.members if m.assignment.topic_partitions]
    return held[0] if len(held) == 1 else None


def test_a_request_routed_again_after_a_restart_is_not_answered_twice(rig: DispatchRig) -> None:
    """The request path is at-least-once: after its own crash or a broker restart it may route a request
    again long after the dispatcher answered it — and after that dispatcher was killed and replaced
    (chaos run seed 11: answered at 19.8 s, dispatcher killed at 32.6 s, routed again at 107 s). The new
    instance has nothing of its own to replay, so it must find the earlier answers in `responses`."""
    first = [routed([{"model": "sim-small"}], f"answered before the kill {i}") for i in range(6)]
    _run(rig, first, linger_s=0.5)  # answered, and their offsets committed with them
    before = _dispatch_member(rig)
    assert rig.proc is not None and before is not None
    os.kill(rig.proc.pid, signal.SIGKILL)
    rig.proc.wait(10)
    rig.start_dispatcher()
    deadline = time.monotonic() + 60
    while _dispatch_member(rig) in (before, None):  # the new instance took over, with nothing to replay
        assert time.monotonic() < deadline, "the restarted dispatcher did not join its group"
        time.sleep(0.2)
    time.sleep(2.0)  # and its assignment callback ran (before anything new reached its partitions)
    fresh = routed([{"model": "sim-small"}], "after the restart")
    _run(rig, [fresh, *first], linger_s=3.0)  # routed again, as a replaying request path would
    counts = {e["request_id"]: len(rig.responses[e["request_id"]]) for e in [fresh, *first]}
    assert set(counts.values()) == {1}, f"answers per request: {counts}"
