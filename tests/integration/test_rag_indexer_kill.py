"""RAG collections against the real broker, a real indexer process, real Delta and SQLite stores:
documents, new versions and deletions are indexed exactly once across kill -9 at random moments; a
team's tagged request gets passages of its collection, with their lineage, and another team's is
rejected `rag_denied` and audited."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer
from deltalake import DeltaTable

from apps.demo.processes import write_config
from features.collections.indexer import chunks_table, open_online
from features.collections.ingest import DocumentProducer, document_event
from schemas import make_codec
from streamgate.client import RequestProducer, build_request
from streamgate.config import Settings
from streamgate.kafka.clients import consumer_config

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
EXE = Path(sys.executable).parent / "streamgate"
KB = "support-kb"  # declared in config/gateway.yaml: owner support, reader search


def _text(doc: int, version: int) -> str:
    return (f"# Runbook {doc}\n\nVersion {version} of runbook {doc}. " + "Restart the service and check. " * 4
            + f"\n\n## Escalation\n\nPage the on-call of team {doc % 7} after {version} minutes.")


def _delta(settings: Settings) -> list[tuple[str, int, str]]:
    path = chunks_table(settings)
    if not (path / "_delta_log").exists():
        return []
    t = DeltaTable(str(path)).to_pyarrow_table(columns=["doc_id", "doc_version", "chunk_id"])
    return list(zip(t["doc_id"].to_pylist(), t["doc_version"].to_pylist(), t["chunk_id"].to_pylist(),
                    strict=True))


def _online(settings: Settings) -> list[tuple[str, int, str]]:
    store = open_online(settings)
    try:
        return store.listing(KB)
    finally:
        store.close()


def _with_store(settings: Settings, online_store: str, request: pytest.FixtureRequest) -> Settings:
    rag: dict[str, object] = {"batch_docs": 16, "flush_s": 0.2}  # many small commits: many moments to die
    if online_store == "postgres":
        rag |= {"online_store": "postgres", "postgres_dsn": request.getfixturevalue("postgres_dsn")}
    return settings.model_copy(update={"rag": settings.rag.model_copy(update=rag)})


@pytest.mark.parametrize("online_store", ["sqlite", "postgres"])
def test_versions_and_deletions_are_indexed_exactly_once_across_kill_9(
        settings: Settings, topics: dict[str, str], tmp_path: Path, online_store: str,
        request: pytest.FixtureRequest) -> None:
    """The same kill -9 loop against each online store: the embedded SQLite file and a real PostgreSQL
    server with pgvector (started by the `postgres_dsn` fixture), each beside the Delta table."""
    settings = _with_store(settings, online_store, request)
    config = write_config(settings, tmp_path / "rag.yaml")
    log = (tmp_path / "indexer.log").open("ab")

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([str(EXE), "rag", "worker", "--config", str(config)], stdout=log,
                                stderr=subprocess.STDOUT)

    rng = random.Random(7)
    md = "text/markdown"
    events: list[dict[str, Any]] = [document_event(KB, f"rb-{d}.md", 1, text=_text(d, 1), content_type=md)
                                    for d in range(120)]
    for d in rng.sample(range(120), 40):  # new versions
        events.append(document_event(KB, f"rb-{d}.md", 2, text=_text(d, 2), content_type="text/markdown"))
    deleted = set(rng.sample(range(120), 15))
    for d in deleted:
        events.append(document_event(KB, f"rb-{d}.md", 3, deleted=True))
    events.append(document_event(KB, "rb-0.md", 0, text="a stale version, older than the one indexed"))
    events.append(document_event("nobody-declared-this", "x.md", 1, text="dead-lettered"))
    latest: dict[str, int] = {}
    for e in events:
        if e["collection"] == KB and e["version"] >= latest.get(e["doc_id"], -1):
            latest[e["doc_id"]] = e["version"]
    expected_docs = {d: v for d, v in latest.items() if int(d[3:-3]) not in deleted}

    producer = DocumentProducer(settings)
    proc = start()
    per_round = len(events) // 4 + 1
    for r in range(4):
        for e in events[r * per_round:(r + 1) * per_round]:
            producer.send(e)
        producer.flush()
        before, deadline = len(_delta(settings)), time.monotonic() + 90
        while len(_delta(settings)) == before and time.monotonic() < deadline:  # die mid-stream
            time.sleep(0.1)
        time.sleep(rng.uniform(0.0, 0.8))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc = start()

    def settled() -> bool:
        in_delta = {d: v for d, v, _ in _delta(settings)}
        return in_delta == expected_docs == {d: v for d, v, _ in _online(settings)}

    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not settled():
        time.sleep(1)
    time.sleep(2)  # anything written twice would show up now
    proc.terminate()
    proc.wait(30)
    delta, online = _delta(settings), _online(settings)
    assert {d: v for d, v, _ in delta} == expected_docs, "Delta holds other versions than the latest"
    assert sorted(delta) == sorted(online), "the online store and the Delta table differ"
    dupes = [c for c, n in Counter(c for _, _, c in delta).items() if n > 1]
    assert not dupes, f"{len(dupes)} chunks written twice"
    per_doc = Counter(d for d, _, _ in delta)
    assert set(per_doc.values()) == {2}  # each runbook: its intro and its escalation section, once
    assert not any(int(d[3:-3]) in deleted for d, _, _ in delta)  # deletions removed their chunks
    assert DeltaTable(str(chunks_table(settings))).version() >= 6  # really many commits

    # the bad record is dead-lettered, and only it: at least once (a kill after the dead letter is
    # produced but before the stores commit the batch replays it), each naming its source offset so a
    # reader can tell a replay from a second bad record
    letters = _dead_letters(settings, topics)
    assert {(r, o) for r, o in letters} == {("unknown_collection", letters[0][1])}


def _dead_letters(settings: Settings, topics: dict[str, str]) -> list[tuple[str, int]]:
    letters = Consumer(consumer_config(settings, group_id=f"dl-{uuid.uuid4().hex[:6]}", role="admin")
                       | {"auto.offset.reset": "earliest"})
    letters.subscribe([topics["deadletter"]])
    codec, found = make_codec(topics["deadletter"], "DeadLetter"), list[tuple[str, int]]()
    end = time.monotonic() + 15
    while time.monotonic() < end and not found:
        found += [(d["reason_code"], d["offset"]) for d in (codec.decode(m.value() or b"") for m in
                  letters.consume(10, timeout=0.5) if m.error() is None)]
    time.sleep(1)  # a replayed copy, if any, is read too
    found += [(d["reason_code"], d["offset"]) for d in (codec.decode(m.value() or b"") for m in
              letters.consume(10, timeout=1) if m.error() is None)]
    letters.close()
    return found


@pytest.fixture
def indexed(settings: Settings, topics: dict[str, str], api_keys: dict[tuple[str, str], str],
            tmp_path: Path) -> Iterator[Settings]:
    """Two runbooks indexed through the topic; a request-path worker serving the collections."""
    settings = settings.model_copy(update={"rag": settings.rag.model_copy(update={"enabled": True})})
    config = write_config(settings, tmp_path / "cfg.yaml")
    procs = [subprocess.Popen([str(EXE), *cmd, "--config", str(config)],
                              stdout=(tmp_path / f"{cmd[0]}.log").open("wb"), stderr=subprocess.STDOUT)
             for cmd in (["rag", "worker"], ["streams", "worker"])]
    try:
        producer = DocumentProducer(settings)
        producer.send(document_event(KB, "refunds.md", 1, title="Refunds", content_type="text/markdown",
                                     text="# Refunds\n\nRefunds are paid within 5 business days to the card "
                                          "used. Contact billing at billing-team@example.com."))
        producer.send(document_event(KB, "outage.md", 1, title="Outages", content_type="text/markdown",
                                     text="# Outages\n\nDuring an outage, post on the status page first."))
        producer.flush()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(_online(settings)) < 2:
            time.sleep(0.5)
        assert len(_online(settings)) == 2
        yield settings
    finally:
        for p in procs:
            p.terminate()
            p.wait(20)


def test_a_teams_collection_is_served_to_it_and_refused_to_another(
        indexed: Settings, topics: dict[str, str], api_keys: dict[tuple[str, str], str]) -> None:
    question = "How long do refunds take?"
    requests = {}
    for team, project in (("support", "chatbot"), ("marketing", "copy")):
        requests[team] = build_request(team=team, project=project, model="gpt-4o-mini",
                                       api_key=api_keys[(team, project)], tags={"rag": KB},
                                       messages=[{"role": "user", "content": question}])
    with RequestProducer(indexed) as producer:
        for r in requests.values():
            producer.send(r)
    consumer = Consumer(consumer_config(indexed, group_id=f"rag-{uuid.uuid4().hex[:6]}", role="admin")
                        | {"auto.offset.reset": "earliest"})
    wanted = {"requests.routed": "RoutedRequest", "requests.rejected": "Response", "audit": "AuditEvent",
              "guardrail.verdicts": "GuardrailVerdict"}
    consumer.subscribe([topics[t] for t in wanted])
    codecs = {topics[t]: make_codec(topics[t], s) for t, s in wanted.items()}
    seen: dict[str, list[dict[str, Any]]] = {t: [] for t in wanted}
    by_physical = {topics[t]: t for t in wanted}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (seen["requests.routed"] and seen["requests.rejected"]
                                               and seen["audit"]):
        for m in consumer.consume(100, timeout=0.5):
            if m.error() is None:
                seen[by_physical[m.topic() or ""]].append(codecs[m.topic() or ""].decode(m.value() or b""))
    time.sleep(1)
    for m in consumer.consume(100, timeout=1):
        if m.error() is None:
            seen[by_physical[m.topic() or ""]].append(codecs[m.topic() or ""].decode(m.value() or b""))
    consumer.close()
    [routed] = seen["requests.routed"]
    assert routed["request_id"] == requests["support"].request_id
    context = routed["messages"][0]["content"]
    assert "5 business days" in context
    assert "billing-team@example.com" not in context  # PII in the collection was redacted on the way
    assert '"refunds.md",1,' in routed["metadata"]["rag.chunks"]
    [rejected] = seen["requests.rejected"]
    assert rejected["request_id"] == requests["marketing"].request_id
    assert rejected["reason_code"] == "rag_denied"
    audits = [a for a in seen["audit"] if a["request_id"] == requests["marketing"].request_id]
    assert audits and audits[0]["reason"] and KB in audits[0]["reason"]
    assert any(v["stage"] == "context" for v in seen["guardrail.verdicts"])
