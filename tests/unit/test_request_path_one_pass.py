"""The request path in one pass (streams/pipeline.py) and its batched dedup claims (streams/claims.py),
in memory: what a record produces, duplicates dropped, claims surviving a restore of their changelog."""

from __future__ import annotations

import json
import random
from typing import Any

from schemas.snapshots import UsageSnapshot
from schemas.topics import Topic
from shared.guardrails.content import check_content
from shared.guardrails.pii import scan_pii
from shared.policy.config import GuardrailConfig, load_policy
from shared.policy.holder import PolicyHolder
from streamgate.config import load_settings
from streams.claims import BatchedClaims, position_record, read_position
from streams.guardrails.budgets import AdmittedUsage
from streams.io import StageIO
from streams.pipeline import RequestPath, RequestPathDeps, check_claim
from tests.unit.test_request_path_rules import event

WINDOW = 600_000


def test_a_claim_drops_another_record_with_the_id_but_not_a_replay_of_the_same_record() -> None:
    assert check_claim(None, 5, 1_000, WINDOW) == (False, [1_000, 5])
    assert check_claim([1_000, 5], 5, 2_000, WINDOW) == (False, None)  # replay after a crash
    assert check_claim([1_000, 5], 9, 2_000, WINDOW) == (True, None)  # a second record with the id
    assert check_claim([1_000, 5], 9, 1_000 + WINDOW, WINDOW) == (False, [1_000 + WINDOW, 9])  # expired


def _restored(store: dict[bytes, Any]) -> dict[bytes, Any]:
    """What faust's memory store holds after reading the changelog back: JSON round-tripped values."""
    return {k: json.loads(json.dumps(v)) for k, v in store.items()}


def test_claims_go_out_as_one_record_per_batch_and_partition_and_come_back_after_a_restore() -> None:
    store: dict[bytes, Any] = {}
    claims = BatchedClaims(store, WINDOW)
    assert not claims.duplicate(b"a", 0, 10, 1_000)
    assert not claims.duplicate(b"b", 0, 11, 1_000)
    assert not claims.duplicate(b"c", 3, 7, 1_000)
    assert claims.duplicate(b"a", 3, 8, 1_001)  # same id, other record: dropped before any flush
    records = claims.flush()
    assert sorted((p, k) for p, k, _ in records) == [(0, b"0@10"), (3, b"3@7")]
    assert dict(records[0][2]) == {"a": [1_000, 10], "b": [1_000, 11]}
    assert claims.flush() == []

    after_crash = BatchedClaims(_restored(store), WINDOW)
    assert not after_crash.duplicate(b"a", 0, 10, 5_000), "a replay of the claiming record is processed"
    assert after_crash.duplicate(b"b", 0, 12, 5_000), "another record with a claimed id is dropped"
    assert not after_crash.duplicate(b"d", 0, 13, 5_000)


def test_a_position_record_round_trips_and_a_faust_restore_of_it_is_not_a_claim() -> None:
    key, value = position_record(4, 1234)
    assert read_position(key, value) == (4, 1234)
    assert read_position(key, None) == (4, None)
    assert read_position(b"4@10", b'{"a": [1, 10]}') is None, "claims are not positions"
    store: dict[bytes, Any] = {b"0@10": {"a": [1_000, 10]}, key: json.loads(value)}
    claims = BatchedClaims(store, WINDOW)  # faust restores the whole changelog into its table
    assert claims.duplicate(b"a", 0, 11, 2_000)
    assert not claims.duplicate(b"offset", 0, 12, 2_000), "a position's fields are no request ids"


def test_claims_loaded_on_assignment_count_and_a_revoked_partitions_claims_are_forgotten() -> None:
    """The transactions engine (streams/loop.py) reads a partition's changelog back on assignment and
    drops its claims when the partition moves to another worker."""
    claims = BatchedClaims({}, WINDOW)
    assert not claims.duplicate(b"mine", 1, 3, 1_000)
    claims.flush()
    claims.load(b"0@10", {"a": [1_000, 10]})
    claims.load(b"0@20", {"b": [1_000, 20]})
    claims.load(b"0@20", None)  # its tombstone came later in the changelog
    assert claims.duplicate(b"a", 0, 11, 2_000), "a loaded claim drops another record with the id"
    assert not claims.duplicate(b"b", 0, 21, 2_000), "a tombstoned claim is gone"
    claims.flush()
    claims.forget({0})
    assert not claims.duplicate(b"a", 0, 12, 3_000), "a forgotten partition's claims no longer count"
    assert claims.duplicate(b"mine", 1, 4, 3_000), "other partitions' claims stay"


def test_claims_written_one_per_request_id_by_the_previous_layout_still_count() -> None:
    claims = BatchedClaims({b"old-request": [1_000, 4]}, WINDOW)
    assert claims.duplicate(b"old-request", 2, 99, 2_000)


def test_a_store_changed_under_the_index_is_read_again() -> None:
    store: dict[bytes, Any] = {}
    claims = BatchedClaims(store, WINDOW)
    assert not claims.duplicate(b"x", 1, 1, 1_000)
    claims.flush()
    store[b"1@50"] = {"y": [1_000, 50]}  # a partition restored from the changelog by faust
    assert claims.duplicate(b"y", 1, 51, 2_000)
    assert claims.duplicate(b"x", 1, 2, 2_000)


def _path() -> tuple[RequestPath, StageIO]:
    io = StageIO(load_settings())
    return RequestPath(io, RequestPathDeps(policy=PolicyHolder(load_policy()), rng=random.Random(1))), io


def test_one_pass_routes_a_valid_request_and_forwards_its_original_bytes_as_guarded() -> None:
    path, io = _path()
    raw = io.codecs[Topic.REQUESTS].encode(event())
    claims = BatchedClaims({}, WINDOW)
    outputs = path.process(raw, b"k", 0, 1, claims.duplicate, 1_000)
    by_topic = {o.topic: o for o in outputs}
    assert set(by_topic) == {io.names[Topic.GUARDED], io.names[Topic.ROUTED]}
    assert by_topic[io.names[Topic.GUARDED]].value == raw
    routed = io.codecs[Topic.ROUTED].decode(by_topic[io.names[Topic.ROUTED]].value)
    assert [t["provider"] for t in routed["targets"]] == ["openai", "azure"]

    again = path.process(io.codecs[Topic.REQUESTS].encode(event()), b"k", 0, 2, claims.duplicate, 1_001)
    [letter] = again
    assert letter.topic == io.names[Topic.DEADLETTER]
    assert io.codecs[Topic.DEADLETTER].decode(letter.value)["reason_code"] == "duplicate"


def test_a_request_past_its_deadline_stops_before_the_guardrails_with_no_dead_letter() -> None:
    """Under overload most of a backlog is requests nobody waits for: they cost an answer, not a PII scan,
    a route, a dedup claim or a dead letter holding the prompt."""
    io = StageIO(load_settings())
    scanned: list[list[str]] = []

    def scan(texts: list[str], *args: Any) -> Any:
        scanned.append(texts)
        return scan_pii(texts, *args)

    path = RequestPath(io, RequestPathDeps(policy=PolicyHolder(load_policy()), scan_pii=scan))
    claims = BatchedClaims({}, WINDOW)
    late = io.codecs[Topic.REQUESTS].encode(event(request_id="late", deadline_at=1_000))
    [answer] = path.process(late, b"k", 0, 1, claims.duplicate, 1_250)
    assert answer.topic == io.names[Topic.REJECTED] and path.routed is None and not scanned
    response = io.codecs[Topic.REJECTED].decode(answer.value)
    assert (response["status"], response["reason_code"]) == ("failed", "deadline_exceeded")
    assert "250 ms" in response["message"] and "no provider was called" in response["message"]
    assert not claims.flush(), "an expired request claims nothing: a resend of it is decided again"

    in_time = io.codecs[Topic.REQUESTS].encode(event(request_id="in-time", deadline_at=1_000))
    outputs = path.process(in_time, b"k", 0, 2, claims.duplicate, 999)
    assert io.names[Topic.ROUTED] in {o.topic for o in outputs} and scanned


def test_one_pass_redacts_pii_before_the_guarded_and_routed_records() -> None:
    path, io = _path()
    raw = io.codecs[Topic.REQUESTS].encode(event(messages=[
        {"role": "user", "content": "write to jane@example.com", "name": None}]))
    outputs = path.process(raw, b"k", 0, 1, BatchedClaims({}, WINDOW).duplicate, 1_000)
    topics = [o.topic for o in outputs]
    assert topics == [io.names[t] for t in (Topic.VERDICTS, Topic.GUARDED, Topic.AUDIT, Topic.ROUTED)]
    for o in outputs:
        assert b"jane@example.com" not in o.value


def test_a_garbage_record_is_dead_lettered_with_its_bytes() -> None:
    path, io = _path()
    [letter] = path.process(b"\x00garbage", b"g", 2, 3, BatchedClaims({}, WINDOW).duplicate, 1_000)
    decoded = io.codecs[Topic.DEADLETTER].decode(letter.value)
    assert decoded["original_value"] == b"\x00garbage" and decoded["reason_code"] == "malformed"


def test_content_rules_take_the_same_decisions_on_the_lower_cased_fast_path() -> None:
    rules = GuardrailConfig(deny_patterns=["(?i)ignore (all )?previous instructions", "Secret[A-Z]+",
                                           r"(?i)\x41bc"],
                            blocked_topics=["build a bomb"])
    cases = {"IGNORE previous Instructions": "policy_denied", "a SecretPLAN": "policy_denied",
             "a secretplan": None, "ABC": "policy_denied", "how to Build A Bomb": "blocked_topic",
             "hello": None, "ignore all previous instructions é": "policy_denied"}
    for text, expected in cases.items():
        got = check_content([text], rules)
        assert (got.reason_code if got else None) == expected, text


def test_admitted_usage_reads_the_aggregators_counts_once_per_scope_and_second() -> None:
    calls: list[str] = []

    class Counting:
        def usage(self, scope: str, now_ms: int) -> UsageSnapshot:
            calls.append(scope)
            return UsageSnapshot(requests_last_minute=7)

    usage = AdmittedUsage(Counting())
    assert [usage.usage("t", ms).requests_last_minute for ms in (1_000, 1_200, 1_999)] == [7, 7, 7]
    usage.usage("u", 1_500)
    usage.usage("t", 2_000)
    assert calls == ["t", "u", "t"]
    usage.admit(["t"], 10, 2_100)  # what this worker admitted still counts on top, at once
    assert usage.usage("t", 2_200).tokens_last_minute == 10


def test_records_whose_claims_all_expired_are_deleted_with_a_tombstone() -> None:
    store: dict[bytes, Any] = {}
    claims = BatchedClaims(store, WINDOW)
    assert not claims.duplicate(b"old", 2, 5, 1_000)
    claims.flush(1_000)
    assert not claims.duplicate(b"young", 2, 6, 1_000 + WINDOW - 1)
    assert not claims.duplicate(b"again", 4, 9, 1_000 + WINDOW - 1)
    records = claims.flush(1_000 + WINDOW + 20_000)
    assert (2, b"2@5", None) in records, "the expired record goes, as a tombstone on its partition"
    assert set(store) == {b"2@6", b"4@9"}
    assert claims.duplicate(b"young", 2, 7, 1_000 + WINDOW + 20_000), "younger claims still decide"
    # the expired id is free again: a new record with it is processed (and claims it anew)
    assert not claims.duplicate(b"old", 2, 8, 1_000 + WINDOW + 20_000)
    after_crash = BatchedClaims(_restored(store), WINDOW)  # faust applied the tombstone: key deleted
    assert after_crash.flush(10 * WINDOW) == [(2, b"2@6", None), (4, b"4@9", None)]
    assert after_crash.store == {}


def test_expiry_runs_at_most_every_few_seconds() -> None:
    claims = BatchedClaims({}, 1_000)
    assert not claims.duplicate(b"a", 0, 1, 0)
    claims.flush(20_000)  # writes "0@1" and, its one claim already past the window, tombstones it
    assert not claims.duplicate(b"b", 0, 2, 20_000)
    assert [r for r in claims.flush(21_000) if r[2] is None] == [], "too soon after the last expiry"


def test_the_routed_event_kept_for_in_process_dispatch_is_what_its_record_decodes_to() -> None:
    """The fused worker dispatches `RequestPath.routed` instead of decoding the routed record: the two must
    not differ, for any shape of request (redacted, tools, params, conversations)."""
    from shared.traffic import workload

    path, io = _path()
    claims = BatchedClaims({}, WINDOW)
    routed = 0
    for offset, request in enumerate(workload.requests(400, seed=3)):
        outputs = path.process(io.codecs[Topic.REQUESTS].encode(request.to_event()), b"k", 0, offset,
                               claims.duplicate, 1_000)
        record = next((o for o in outputs if o.topic == io.names[Topic.ROUTED]), None)
        if record is None:
            assert path.routed is None
            continue
        assert path.routed == io.codecs[Topic.ROUTED].decode(record.value or b""), request.request_id
        routed += 1
    assert routed > 200
