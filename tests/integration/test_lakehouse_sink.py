"""The bronze sink against the real broker and real Delta tables: exactly once across kill -9."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from confluent_kafka import Producer
from deltalake import DeltaTable, write_deltalake

from apps.demo.processes import write_config
from lakehouse.gold import rebuild_daily_cost, touched_dates
from lakehouse.maintain import maintain_all
from lakehouse.refine import refine_once
from lakehouse.sink import bronze_root
from schemas import make_codec
from schemas.topics import load_topic_specs
from shared.tables.delta import open_or_none, open_table
from shared.tables.query import run_query
from shared.traffic.telemetry import telemetry_events
from streamgate.config import Settings
from streamgate.kafka.clients import producer_config
from streamgate.storage import TablePath
from tests.conftest import Lake

pytestmark = pytest.mark.kafka


def _rows(path: TablePath) -> list[tuple[int, int]]:
    if (table := open_or_none(path)) is None:
        return []
    table = table.to_pyarrow_table(columns=["_partition", "_offset"])
    return list(zip(table["_partition"].to_pylist(), table["_offset"].to_pylist(), strict=True))


def test_kill_9_at_random_moments_lands_every_record_exactly_once(lake: Lake, topics: dict[str, str],
                                                                  tmp_path: Path) -> None:
    """On the local disk and in the S3 server's bucket (conditional-PUT commits)."""
    settings = lake[0].model_copy(update={"lakehouse": lake[0].lakehouse.model_copy(
        update={"batch_rows": 700, "flush_s": 0.3})})  # many small commits: many moments to die in
    config = write_config(settings, tmp_path / "sink.yaml")
    exe = Path(sys.executable).parent / "streamgate"
    log = (tmp_path / "sink.log").open("ab")

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([str(exe), "lakehouse", "sink", "--config", str(config)], stdout=log,
                                stderr=subprocess.STDOUT, env=os.environ | lake[1])

    topic = topics["telemetry"]
    codec = make_codec(topic, "Telemetry")
    producer = Producer(producer_config(settings, client_id="t", role="admin"))
    events = list(telemetry_events(12_000, start_ms=int(time.time() * 1000) - 60_000, span_ms=60_000))
    path = bronze_root(settings) / "telemetry"
    proc = start()
    for chunk in range(4):
        for e in events[chunk * 3000:(chunk + 1) * 3000]:
            producer.produce(topic, codec.encode(e), e["request_id"].encode())
            producer.poll(0)
        producer.flush(30)
        landed, deadline = len(_rows(path)), time.monotonic() + 60
        while len(_rows(path)) == landed and time.monotonic() < deadline:  # kill it mid-stream, not at start
            time.sleep(0.1)
        time.sleep(random.uniform(0.0, 0.6))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc = start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(_rows(path)) < len(events):
        time.sleep(1)
    time.sleep(2)  # anything written twice would show up now
    proc.terminate()
    proc.wait(30)
    rows = _rows(path)
    assert len(rows) == len(set(rows)), f"{len(rows) - len(set(rows))} rows written twice"
    assert len(rows) == len(events), f"{len(events) - len(rows)} records missing"
    table = open_table(path)
    got = table.to_pyarrow_table(columns=["cost_nanousd"])["cost_nanousd"].to_pylist()
    assert sum(got) == sum(e["cost_nanousd"] for e in events)
    assert table.version() >= 6  # it really committed in many small transactions
    _gold_refine_and_care_keep_every_row(settings, topic, events, rows)


def _gold_refine_and_care_keep_every_row(settings: Settings, topic: str, events: list[dict[str, Any]],
                                         rows: list[tuple[int, int]]) -> None:
    path = bronze_root(settings) / "telemetry"
    table = open_table(path)
    assert rebuild_daily_cost(settings) > 0  # gold adds up to the same cost, to the nano-dollar
    [gold] = run_query(settings, "select sum(cost_nanousd) as cost, sum(attempts) as attempts "
                                 "from gold_daily_cost").to_pylist()
    assert gold == {"cost": sum(e["cost_nanousd"] for e in events), "attempts": len(events)}
    day = touched_dates(settings)[0]
    assert rebuild_daily_cost(settings, [day]) > 0  # a partial rebuild replaces that day only
    [again] = run_query(settings, "select sum(cost_nanousd) as cost from gold_daily_cost").to_pylist()
    assert again["cost"] == gold["cost"]

    done = refine_once(settings)  # the scheduled round: gold for recent dates, then the GX suites
    assert set(done.gold_rows) == {"daily_cost", "provider_daily"} and done.checks > 0 and done.failed == 0

    offsets = {p: table.transaction_version(f"{settings.kafka.topic_prefix}streamgate-lakehouse:{topic}:{p}")
               for p in range(_partitions(settings, "telemetry"))}
    [care] = [c for c in maintain_all(settings) if c.table == "telemetry"]
    assert care.files_after < care.files_before  # compacted (and z-ordered)
    after = open_table(path)
    assert sorted(_rows(path)) == sorted(rows)  # same rows, and the sink's offsets survive
    assert {p: after.transaction_version(f"{settings.kafka.topic_prefix}streamgate-lakehouse:{topic}:{p}")
            for p in range(_partitions(settings, "telemetry"))} == offsets
    after.load_as_version(1)  # time travel still works within the retention


def _partitions(settings: Settings, topic: str) -> int:
    specs = load_topic_specs(partitions=settings.kafka.partitions)
    return next(s.partitions for s in specs if s.name == topic)


def test_two_sinks_share_the_partitions_and_append_to_one_table(lake: Lake, topics: dict[str, str],
                                                                tmp_path: Path) -> None:
    """Two writers committing to one table at once, locally and in the bucket: on S3 their commits race
    for the same log versions, and conditional PUT lets exactly one win each (the other retries)."""
    settings, env = lake
    settings = settings.model_copy(update={"lakehouse": settings.lakehouse.model_copy(
        update={"batch_rows": 500, "flush_s": 0.3})})
    config = write_config(settings, tmp_path / "sink.yaml")
    exe = Path(sys.executable).parent / "streamgate"
    logs = [tmp_path / f"sink-{i}.log" for i in "ab"]
    procs = [subprocess.Popen([str(exe), "lakehouse", "sink", "--instance", i, "--config", str(config)],
                              stdout=log.open("ab"), stderr=subprocess.STDOUT, env=os.environ | env)
             for i, log in zip("ab", logs, strict=True)]
    try:
        joined = time.monotonic() + 90  # both own partitions before the records arrive (slow starts
        while time.monotonic() < joined and min(_owned(logs)) == 0:  # under load take more than 8 s)
            time.sleep(0.5)
        topic, codec = topics["telemetry"], make_codec(topics["telemetry"], "Telemetry")
        producer = Producer(producer_config(settings, client_id="t", role="admin"))
        events = list(telemetry_events(8_000, start_ms=int(time.time() * 1000) - 60_000, span_ms=60_000))
        for e in events:
            producer.produce(topic, codec.encode(e), e["request_id"].encode())
            producer.poll(0)
        producer.flush(30)
        path = bronze_root(settings) / "telemetry"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(_rows(path)) < len(events):
            time.sleep(1)
        time.sleep(2)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(30)
    rows = _rows(path)
    assert len(rows) == len(set(rows)) == len(events)
    writers = {p for p, _ in rows}
    assert writers == set(range(_partitions(settings, "telemetry")))
    table = open_table(path)  # one log, versions 0..N, no gap; each partition's offset is its last row's
    assert sorted(h["version"] for h in table.history()) == list(range(table.version() + 1))
    last = {p: max(o for q, o in rows if q == p) for p in writers}
    group = settings.kafka.topic_prefix + settings.lakehouse.group_id
    assert {p: table.transaction_version(f"{group}:{topic}:{p}") for p in writers} == last
    owned = _owned(logs)
    assert min(owned) > 0, f"both sinks must own partitions (cooperative split): {owned}"


def _owned(logs: list[Path]) -> list[int]:
    """Per sink log, the most partitions it was assigned at once (0 before it joined)."""
    return [max((int(line.split("assigned ")[1].split()[0]) for line in log.read_text().splitlines()
                 if "assigned " in line), default=0) if log.exists() else 0 for log in logs]


def test_a_field_added_to_the_schema_is_added_to_the_table_without_rewriting_it(
        settings: Settings, topics: dict[str, str]) -> None:
    from lakehouse.sink import BronzeSink
    from lakehouse.tables import BRONZE

    table = next(t for t in BRONZE if t.name == "telemetry")
    later = {"cache_kind", "rag_chunks"}  # fields added after Telemetry v1
    old_schema = pa.schema([f for f in table.schema() if f.name not in later])  # Telemetry v1's columns
    path = bronze_root(settings) / "telemetry"
    [old] = telemetry_events(1, start_ms=int(time.time() * 1000))
    old_row = {k: v for k, v in old.items() if k not in later} | {
        "_partition": 0, "_offset": -1, "_kafka_ts": old["ended_at"], "date": "2026-01-01"}
    write_deltalake(str(path), pa.Table.from_pylist([old_row], schema=old_schema), partition_by=["date"])
    first_files = set(DeltaTable(str(path)).file_uris())

    codec = make_codec(topics["telemetry"], "Telemetry")
    producer = Producer(producer_config(settings, client_id="t", role="admin"))
    events = list(telemetry_events(200, start_ms=int(time.time() * 1000), seed=5))
    for e in events:
        producer.produce(topics["telemetry"], codec.encode(e), e["request_id"].encode())
    producer.flush(30)
    sink = BronzeSink(settings, instance="evolve", tables=(table,))
    assert sink.run(idle_exit_s=3.0)["rows:telemetry"] == len(events)

    evolved = DeltaTable(str(path))
    assert later <= set(evolved.schema().to_arrow().names)
    assert first_files <= set(evolved.file_uris())  # the old file is still there, untouched
    kinds = evolved.to_pyarrow_table(columns=["_offset", "cache_kind"]).to_pylist()
    assert [k["cache_kind"] for k in kinds if k["_offset"] == -1] == [None]
    assert sorted((k["cache_kind"] or "") for k in kinds if k["_offset"] >= 0) == sorted(
        (e["cache_kind"] or "") for e in events)
