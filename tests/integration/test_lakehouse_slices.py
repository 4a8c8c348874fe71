"""Silver and the quality checks in bounded passes (slices of request ids, batches of rows) give what one
pass over the whole table gives: real Delta tables on disk, slices and batches made tiny."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable, write_deltalake

from lakehouse import quality, slices
from lakehouse.quality import run_checks
from lakehouse.silver import merge_request_facts
from shared.tables.query import run_query, stream_query
from streamgate.config import Settings, load_settings

DATES = ("2026-12-01", "2026-12-02", "2026-12-03")
MS = pa.timestamp("ms", tz="UTC")


def _ids(n: int, rng: random.Random) -> list[str]:
    """Ids of every shape a caller may send: UUIDs, counters, one character, non-ASCII."""
    shapes = [lambda i: f"{rng.getrandbits(128):032x}", lambda i: f"demo-{i:07d}", lambda i: f"{i}-v1",
              lambda i: f"réq-{i}-é"]
    return [shapes[i % 4](i) for i in range(n - 2)] + ["", "z"]


def _land(root: Path, n: int = 400, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    ids = _ids(n, rng)
    day = [DATES[i % 3] for i in range(n)]
    statuses = [rng.choice(["ok", "ok", "failed", "rejected"]) for _ in ids]
    ts = pa.array([1_796_000_000_000 + i for i in range(n)], MS)
    write_deltalake(str(root / "bronze" / "responses"), pa.table({
        "request_id": ids, "date": day, "team": ["t"] * n, "project": ["p"] * n, "api_key_id": ["k"] * n,
        "status": statuses, "reason_code": [None] * n, "provider": ["openai"] * n, "model": ["m"] * n,
        "target_index": pa.array([0] * n, pa.int32()), "cache_hit": [False] * n, "cache_kind": [None] * n,
        "latency_ms": pa.array([5] * n, pa.int64()), "created_at": ts, "completed_at": ts,
        "cost_nanousd": pa.array([7] * n, pa.int64()), "_kafka_ts": ts}), partition_by=["date"])
    attempts = [(rid, d) for rid, d, s in zip(ids, day, statuses, strict=True) if s != "rejected"
                for _ in range(rng.randint(1, 3))]
    m = len(attempts)
    write_deltalake(str(root / "bronze" / "telemetry"), pa.table({
        "request_id": [a[0] for a in attempts], "event_id": [f"e{i}" for i in range(m)],
        "date": [a[1] for a in attempts], "status": [rng.choice(["ok", "error"]) for _ in range(m)],
        "provider": ["openai"] * m, "prompt_tokens": pa.array([3] * m, pa.int64()),
        "completion_tokens": pa.array([4] * m, pa.int64()), "cost_nanousd": pa.array([11] * m, pa.int64()),
        "latency_ms": pa.array([9] * m, pa.int64())}), partition_by=["date"])
    write_deltalake(str(root / "bronze" / "routed"), pa.table({
        "request_id": ids, "date": day, "requested_model": ["m"] * n, "strategy": ["s"] * n,
        "routing_config_version": ["r"] * n, "policy_version": ["v"] * n, "region": ["eu"] * n}),
        partition_by=["date"])
    write_deltalake(str(root / "bronze" / "requests"), pa.table({
        "request_id": ids, "team": ["t"] * n, "date": day}), partition_by=["date"])
    return ids


def _settings(tmp_path: Path, name: str) -> Settings:
    return load_settings().model_copy(update={"state_dir": tmp_path / name})


def _facts(settings: Settings) -> list[dict[str, object]]:
    table = DeltaTable(str(settings.table_root() / "silver" / "request_facts")).to_pyarrow_table()
    return sorted(table.to_pylist(), key=lambda r: str(r["request_id"]))


def test_every_id_is_in_exactly_one_slice(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "a")
    ids = _land(settings.table_root())
    for count in (2, 5, 13):
        seen = [run_query(settings, f"select request_id from responses where {slices.slice_of(i, count)}")
                .column(0).to_pylist() for i in range(count)]
        assert sorted(x for part in seen for x in part) == sorted(ids)
        assert max(len(part) for part in seen) < 1.6 * len(ids) / count  # even, whatever the ids' tails


def test_sliced_merge_gives_the_one_pass_facts_and_a_second_run_changes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole, sliced = _settings(tmp_path, "whole"), _settings(tmp_path, "sliced")
    ids = _land(whole.table_root())
    _land(sliced.table_root())
    assert merge_request_facts(whole, list(DATES[:2])) == len([d for d in range(len(ids)) if d % 3 < 2])
    monkeypatch.setattr(slices, "ROWS_PER_SLICE", 37)  # ~7 slices of two dates' ~270 responses
    assert slices.slice_count(sliced, "responses", slices.dates_in(list(DATES[:2]))) == 8
    merge_request_facts(sliced, list(DATES[:2]))
    assert _facts(sliced) == _facts(whole)
    merge_request_facts(sliced, list(DATES))  # the third date joins; the first two are merged again
    late = {"request_id": [ids[0]], "event_id": ["e-late"], "date": [DATES[0]], "status": ["error"],
            "provider": ["openai"], "prompt_tokens": pa.array([3], pa.int64()),
            "completion_tokens": pa.array([4], pa.int64()), "cost_nanousd": pa.array([11], pa.int64()),
            "latency_ms": pa.array([9], pa.int64())}
    for settings in (whole, sliced):  # a late attempt: its request's facts change on the next MERGE
        write_deltalake(str(settings.table_root() / "bronze" / "telemetry"), pa.table(late), mode="append",
                        partition_by=["date"])
    merge_request_facts(sliced, list(DATES))
    [fact] = [r for r in _facts(sliced) if r["request_id"] == ids[0]]
    assert fact["failed_attempts"] >= 1 and fact["cost_nanousd"] % 11 == 0
    assert len(_facts(sliced)) == len(ids) and len({r["request_id"] for r in _facts(sliced)}) == len(ids)
    merge_request_facts(whole, None)
    assert _facts(sliced) == _facts(whole)
    assert sum(int(r["attempts"]) for r in _facts(whole)) == run_query(  # type: ignore[call-overload]
        whole, "select count(*) from telemetry").column(0)[0].as_py()


def test_batched_checks_count_what_a_whole_table_check_counts(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path, "q")
    root = settings.table_root()
    ids = _land(root)
    merge_request_facts(settings)
    # three duplicated answers, two of them on the first date; a null provider; an orphan silver row
    answers = DeltaTable(str(root / "bronze" / "responses")).to_pyarrow_table()
    dup = pa.concat_tables([answers.filter(pc.field("date") == DATES[0]).slice(0, 2),
                            answers.filter(pc.field("date") == DATES[1]).slice(0, 1)])
    write_deltalake(str(root / "bronze" / "responses"), dup, mode="append", partition_by=["date"])
    write_deltalake(str(root / "bronze" / "telemetry"), pa.table({
        "request_id": [ids[0]], "event_id": ["e-null"], "date": [DATES[0]], "status": ["ok"],
        "provider": pa.array([None], pa.string()), "prompt_tokens": pa.array([1], pa.int64()),
        "completion_tokens": pa.array([1], pa.int64()), "cost_nanousd": pa.array([-5], pa.int64()),
        "latency_ms": pa.array([1], pa.int64())}), mode="append", partition_by=["date"])
    orphan = DeltaTable(str(root / "silver" / "request_facts")).to_pyarrow_table().slice(0, 1)
    orphan = orphan.set_column(orphan.column_names.index("request_id"), "request_id", pa.array(["ghost"]))
    write_deltalake(str(root / "silver" / "request_facts"), orphan, mode="append", partition_by=["date"])

    def outcome(dates: list[str] | None) -> dict[tuple[str, str, str], tuple[bool, int, int]]:
        return {(r.table, r.expectation, r.column): (r.success, r.unexpected, r.rows)
                for r in run_checks(settings, dates)}

    whole = outcome(None)
    monkeypatch.setattr(quality, "BATCH_ROWS", 50)
    monkeypatch.setattr(slices, "ROWS_PER_SLICE", 60)
    assert outcome(None) == whole
    unique = ("responses", "expect_column_values_to_be_unique", "request_id")
    assert whole[unique] == (False, 6, len(ids) + 3)  # every copy of a repeated id, as GX counts them
    assert whole[("telemetry", "expect_column_values_to_not_be_null", "provider")][:2] == (False, 1)
    assert whole[("telemetry", "expect_column_values_to_be_between", "cost_nanousd")][:2] == (False, 1)
    assert whole[("silver_request_facts", "expect_column_values_to_be_between", "orphans")][:2] == (False, 1)
    assert all(ok for (table, _, _), (ok, _, _) in whole.items() if table == "requests")
    first = outcome([DATES[0]])  # only the first date's rows
    assert first[unique][:2] == (False, 4)
    assert first[unique][2] == len(ids[0::3]) + 2


def test_stream_query_yields_every_row_in_bounded_tables(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "s")
    ids = _land(settings.table_root())
    parts = list(stream_query(settings, "select request_id from responses", 100))
    assert sorted(x for p in parts for x in p.column(0).to_pylist()) == sorted(ids)
    assert len(parts) > 1
