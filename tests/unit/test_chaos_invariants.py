"""The chaos invariants on constructed cases: each passes on a clean run and each FAIL is detected."""

from __future__ import annotations

from apps.chaos import KILLABLE
from apps.chaos.faults import plan
from apps.chaos.invariants import (
    Answer,
    Letter,
    bronze_exactly_once,
    cost_totals_agree,
    dead_letters_expected,
    one_final_response,
    repeats,
)
from streamgate.config import Settings

IDS = {"r1", "r2", "r3"}
ANSWERS = [Answer("r1", "ok", None), Answer("r2", "failed", "provider_error"),
           Answer("r3", "rejected", "unknown_team")]


def test_one_final_response_passes_and_catches_missing_twice_and_unknown() -> None:
    assert one_final_response(IDS, ANSWERS).ok
    missing = one_final_response(IDS, ANSWERS[:2])
    assert not missing.ok and "1 without a response (r3)" in missing.detail
    twice = one_final_response(IDS, [*ANSWERS, Answer("r1", "ok", None)])
    assert not twice.ok and "1 answered more than once (r1)" in twice.detail
    stray = one_final_response(IDS, [*ANSWERS, Answer("r9", "ok", None)])
    assert not stray.ok and "never sent (r9)" in stray.detail


def test_bronze_exactly_once_catches_duplicated_missing_and_foreign_rows() -> None:
    topics = {"responses": {(0, 0), (0, 1), (1, 0)}, "telemetry": {(2, 5)}}
    tables = {"responses": [(1, 0), (0, 1), (0, 0)], "telemetry": [(2, 5)]}
    assert bronze_exactly_once(topics, tables).ok
    doubled = bronze_exactly_once(topics, {**tables, "responses": [*tables["responses"], (0, 1)]})
    assert not doubled.ok and "responses: 1 duplicated ((0, 1))" in doubled.detail
    lost = bronze_exactly_once(topics, {**tables, "telemetry": []})
    assert not lost.ok and "telemetry: 1 missing" in lost.detail
    foreign = bronze_exactly_once(topics, {**tables, "telemetry": [(2, 5), (2, 6)]})
    assert not foreign.ok and "not in the topic" in foreign.detail


def test_cost_totals_must_agree_to_the_nano_dollar() -> None:
    offline = {"search": (1_000_000_001, 10), "support": (5, 1)}
    assert cost_totals_agree(offline, dict(offline), dict(offline)).ok
    off_by_one = cost_totals_agree(offline, {**offline, "search": (1_000_000_000, 10)}, dict(offline))
    assert not off_by_one.ok and "aggregates search" in off_by_one.detail
    gold_missing_team = cost_totals_agree(offline, dict(offline), {"search": offline["search"]})
    assert not gold_missing_team.ok and "gold support" in gold_missing_team.detail
    extra_attempt = cost_totals_agree(offline, dict(offline), {**offline, "support": (5, 2)})
    assert not extra_attempt.ok


def _expected_letters() -> tuple[list[Letter], set, dict, dict]:
    injected = {("requests", 0, 7), ("telemetry", 2, 3)}
    repeated = repeats([(("requests", 1, 4), "r1"), (("requests", 1, 9), "r1"), (("requests", 2, 0), "r2")])
    rejected = {"r3": "unknown_team"}
    letters = [Letter(("requests", 0, 7), "malformed", None), Letter(("telemetry", 2, 3), "malformed", None),
               Letter(("requests", 1, 9), "duplicate", "r1"),
               Letter(("requests", 3, 2), "unknown_team", "r3")]
    return letters, injected, repeated, rejected


def test_dead_letters_exactly_the_expected_ones() -> None:
    letters, injected, repeated, rejected = _expected_letters()
    assert repeated == {("requests", "r1"): {("requests", 1, 4), ("requests", 1, 9)}}
    verdict = dead_letters_expected(letters, injected, repeated, rejected)
    assert verdict.ok, verdict.detail
    redelivered = dead_letters_expected([*letters, letters[-1]], injected, repeated, rejected)
    assert redelivered.ok and "1 redelivered copies" in redelivered.detail  # same source record again
    # either record of a repeated request may be the one dropped (a re-enqueued gap comes later)
    first_dropped = [*letters[:2], Letter(("requests", 1, 4), "duplicate", "r1"), letters[3]]
    assert dead_letters_expected(first_dropped, injected, repeated, rejected).ok


def test_dead_letters_catch_unexpected_and_missing_ones() -> None:
    letters, injected, repeated, rejected = _expected_letters()
    stray = dead_letters_expected([*letters, Letter(("requests.guarded", 0, 1), "internal_error", "r1")],
                                  injected, repeated, rejected)
    assert not stray.ok and "1 unexpected" in stray.detail and "internal_error" in stray.detail
    not_a_repeat = dead_letters_expected([*letters, Letter(("requests", 2, 0), "duplicate", "r2")],
                                         injected, repeated, rejected)
    assert not not_a_repeat.ok and "unexpected" in not_a_repeat.detail
    both_dropped = dead_letters_expected([*letters, Letter(("requests", 1, 4), "duplicate", "r1")],
                                         injected, repeated, rejected)
    assert not both_dropped.ok and "every record of r1" in both_dropped.detail
    lost_malformed = dead_letters_expected(letters[1:], injected, repeated, rejected)
    assert not lost_malformed.ok and "missing (injected ('requests', 0, 7))" in lost_malformed.detail
    kept_duplicate = dead_letters_expected([letters[0], letters[1], letters[3]], injected, repeated, rejected)
    assert not kept_duplicate.ok and "duplicate of r1" in kept_duplicate.detail
    silent_rejection = dead_letters_expected(letters[:3], injected, repeated, rejected)
    assert not silent_rejection.ok and "rejected request r3" in silent_rejection.detail
    wrong_reason = dead_letters_expected([*letters[:3], Letter(("requests", 3, 2), "budget", "r3")],
                                         injected, repeated, rejected)
    assert not wrong_reason.ok
    again = Letter(("requests.validated", 3, 8), "unknown_team", "r3")
    rejected_twice = dead_letters_expected([*letters, again], injected, repeated, rejected)
    assert not rejected_twice.ok and "r3 rejected by 2 records" in rejected_twice.detail
    as_request = Letter(("requests", 0, 7), "unknown_team", "r3")
    decoded_injection = dead_letters_expected([as_request, *letters[1:]], injected, repeated, rejected)
    assert not decoded_injection.ok


def test_fault_plan_is_seeded_and_covers_every_component() -> None:
    faults = plan(60, seed=3)
    assert faults == plan(60, seed=3) and faults != plan(60, seed=4)
    assert sorted(f.target for f in faults if f.kind == "kill") == sorted(KILLABLE)
    assert [f.kind for f in faults].count("broker") == 1
    assert all(0 < f.at_s < 60 for f in faults) and faults == sorted(faults)
    outages = [f for f in faults if f.kind in ("outage", "recover")]
    assert len(outages) == 4 and not [f for f in plan(60, seed=3, broker=False) if f.kind == "broker"]


def test_a_run_kills_what_its_deployment_runs() -> None:
    from apps.chaos.run import deployed
    from streamgate.config import load_settings

    settings = load_settings()

    def deployment(name: str) -> Settings:
        streams = settings.streams.model_copy(update={"deployment": name})
        return settings.model_copy(update={"streams": streams})

    fused, staged = deployment("fused"), deployment("staged")
    assert deployed(KILLABLE, fused) == ("gateway-worker", "aggregator", "lakehouse-sink", "simulator")
    assert deployed(("streams-worker", "dispatcher"), fused) == ("gateway-worker",), "killed once, not twice"
    assert deployed(KILLABLE, staged) == ("streams-worker", "dispatcher", "aggregator", "lakehouse-sink",
                                          "simulator")


def test_a_cluster_plan_replaces_the_broker_restart_with_a_leader_kill_and_a_rolling_restart() -> None:
    single, cluster = plan(60, seed=3), plan(60, seed=3, brokers=3)
    kinds = [f.kind for f in cluster]
    assert "broker" not in kinds and kinds.count("leader-kill") == kinds.count("rolling-restart") == 1
    # every other fault is where the single-broker run of the same seed has it
    assert [f for f in single if f.kind != "broker"] == [f for f in cluster
                                                         if f.kind not in ("leader-kill", "rolling-restart")]
    kill = next(f for f in cluster if f.kind == "leader-kill")
    rolling = next(f for f in cluster if f.kind == "rolling-restart")
    assert 0 < kill.at_s < rolling.at_s < 60
    without = plan(60, seed=3, brokers=3, broker=False)
    assert not {"leader-kill", "rolling-restart"} & {f.kind for f in without}


def test_the_longest_stall_is_the_widest_gap_between_answers() -> None:
    from apps.chaos.evidence import longest_stall

    assert longest_stall([10.0, 10.5, 11.0, 19.0, 19.2], since=9.5) == (8.0, 11.0)
    # waiting for the first answer is a stall too; answers of an earlier run are not
    assert longest_stall([3.0, 30.0, 30.5], since=20.0) == (10.0, 20.0)
    assert longest_stall([], since=5.0) == (0.0, 5.0)


def test_a_resent_request_rejected_before_its_claim_has_a_letter_per_copy() -> None:
    """Authentication and validation come before the dedup claim: both copies of a resent request with an
    unknown model are rejected, each with its own letter, and neither is a duplicate."""
    letters, injected, repeated, rejected = _expected_letters()
    repeated = repeats([(("requests", 1, 4), "r1"), (("requests", 1, 9), "r1"),
                        (("requests", 3, 2), "r3"), (("requests", 3, 5), "r3")])
    per_copy = [*letters, Letter(("requests", 3, 5), "unknown_team", "r3", "validate")]
    per_copy[3] = Letter(("requests", 3, 2), "unknown_team", "r3", "validate")
    verdict = dead_letters_expected(per_copy, injected, repeated, rejected)
    assert verdict.ok, verdict.detail
    # rejected later (a guard: after the claim), the second copy must be a duplicate, not a rejection
    guarded = [*letters[:3], Letter(("requests", 3, 2), "unknown_team", "r3", "guard"),
               Letter(("requests", 3, 5), "unknown_team", "r3", "guard")]
    late = dead_letters_expected(guarded, injected, repeated, rejected)
    assert not late.ok and "rejected by 2 records" in late.detail and "duplicate of r3" in late.detail
    # one copy rejected early, the other lost: still missing
    lost = dead_letters_expected(per_copy[:-1], injected, repeated, rejected)
    assert not lost.ok and "duplicate of r3" in lost.detail
