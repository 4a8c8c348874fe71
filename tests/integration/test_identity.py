"""API keys through the real broker: the CLI's lifecycle, and attempts to get around them.

Break-in attempts: another team's key, a made-up key, a key used after its revocation (refused by every
running worker and ring within 5 s), and a planted key looked for everywhere after a short pipeline run
(every topic dumped, every file under the state directory: logs, Delta tables, configs).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from apps.demo.processes import Components, use_simulator_port
from apps.stack import start_simulator
from schemas import make_codec
from shared.identity import KeyRevoked, KeyRing
from shared.identity.admin import KeyAdmin
from shared.tables.query import find_tables
from streamgate.client import RequestProducer, build_request, hash_api_key
from streamgate.config import Settings
from streamgate.kafka.clients import admin_config, consumer_config
from tests.conftest import free_port, kafka_config

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
EXE = str(Path(sys.executable).parent / "streamgate")


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, "keys", *args, "--config", str(config)], capture_output=True, text=True,
                          timeout=120, check=False)


def _config(settings: Settings, tmp_path: Path) -> Path:
    config = tmp_path / "streamgate.yaml"
    config.write_text(yaml.safe_dump({"state_dir": str(settings.state_dir), "kafka": kafka_config(settings)}))
    return config


def _dump(settings: Settings, topic: str, timeout_s: float = 10) -> list[bytes]:
    """Every record's key and value bytes in a topic, from the beginning, read_uncommitted (aborted
    transactions too: nothing may hold a secret even there)."""
    consumer = Consumer(consumer_config(settings, group_id=f"dump-{uuid.uuid4().hex[:6]}", role="admin")
                        | {"isolation.level": "read_uncommitted"})
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    out: list[bytes] = []
    done = {p for p, end in ends.items() if end == 0}
    deadline = time.monotonic() + timeout_s
    while len(done) < len(ends) and time.monotonic() < deadline:
        for m in consumer.consume(1000, timeout=0.5):
            if m.error() is None:
                out.append((m.key() or b"") + b"\x00" + (m.value() or b""))
        # by position, not by the last record seen: a partition ending in a transaction marker (a control
        # record, never returned) would otherwise wait out the deadline
        for tp in consumer.position([TopicPartition(topic, p) for p in ends if p not in done]):
            if tp.offset >= ends[tp.partition]:
                done.add(tp.partition)
    consumer.close()
    return out


def _decoded(settings: Settings, topic: str, event_type: str) -> list[dict[str, Any]]:
    codec = make_codec(topic, event_type)
    return [codec.decode(r.split(b"\x00", 1)[1]) for r in _dump(settings, topic)]


def test_the_cli_creates_lists_rotates_and_revokes_keys_and_audits_each_change(
        settings: Settings, topics: dict[str, str], tmp_path: Path) -> None:
    config = _config(settings, tmp_path)
    made = _cli(config, "create", "--team", "search", "--project", "ranker", "--models", "gpt-4o*,fast",
                "--max-budget-usd", "25", "--rpm", "60", "--expires", "30d", "--json")
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    raw, key_id = created["key"], created["id"]
    assert raw.startswith("sg-") and key_id.startswith("key_")
    assert _cli(config, "create", "--team", "search", "--project", "nope").returncode == 2

    listed = _cli(config, "list", "--json")
    assert listed.returncode == 0 and raw not in listed.stdout and "hmac" not in listed.stdout
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["id"], row["team"], row["project"], row["models"], row["rpm"], row["max_budget_usd"]) == (
        key_id, "search", "ranker", ["gpt-4o*", "fast"], 60, 25.0)
    assert row["expires_at"] - row["created_at"] == 30 * 86_400_000

    rotated = _cli(config, "rotate", key_id, "--grace", "1h", "--json")
    assert rotated.returncode == 0, rotated.stderr
    new = json.loads(rotated.stdout)
    assert new["key"] != raw and new["id"] != key_id
    ring = KeyRing.for_settings(settings)
    ring.follow(settings, role="streams").stop()
    assert ring.authenticate_raw(raw).key_id == key_id, "the old key is valid during the grace period"
    assert ring.authenticate_raw(new["key"]).key_id == new["id"]
    assert ring.get(new["id"]).rotated_from == key_id  # type: ignore[union-attr]
    with pytest.raises(KeyRevoked):
        ring.authenticate_raw(raw, int(time.time() * 1000) + 3_600_001)
    assert _cli(config, "revoke", new["id"]).returncode == 0
    assert _cli(config, "revoke", "key_0000000000000000").returncode == 2

    audits = [a for a in _decoded(settings, topics["audit"], "AuditEvent")
              if a["resource"].startswith("key:")]
    assert sorted((a["resource"], a["action"]) for a in audits) == sorted([
        (f"key:{key_id}", "key_create"), (f"key:{new['id']}", "key_create"), (f"key:{key_id}", "key_rotate"),
        (f"key:{new['id']}", "key_revoke")])
    assert all(a["actor"] and a["team"] == "search" for a in audits)
    stored = b"".join(_dump(settings, topics["keys"]) + _dump(settings, topics["audit"]))
    for secret in (raw, new["key"], hash_api_key(raw), hash_api_key(new["key"])):
        assert secret.encode() not in stored
        assert secret.removeprefix("sha256:").encode() not in stored


@pytest.fixture
def pipeline(settings: Settings, topics: dict[str, str],
             api_keys: dict[tuple[str, str], str]) -> Iterator[Components]:
    """The request path, dispatcher, aggregator, lakehouse sink and simulator as processes."""
    run = use_simulator_port(settings.model_copy(update={
        "lakehouse": settings.lakehouse.model_copy(update={"flush_s": 1.0})}), free_port())
    with Components(run, name="identity") as components:
        start_simulator(run, components)
        for name, args in {"streams-worker": ("streams", "worker"), "dispatcher": ("dispatch", "worker"),
                           "aggregator": ("aggregate", "worker"),
                           "lakehouse-sink": ("lakehouse", "sink")}.items():
            components.start(name, *args, "--metrics-port", "0")
        yield components


def _answers(settings: Settings, topic: str, ids: set[str],
             timeout_s: float = 90) -> dict[str, dict[str, Any]]:
    consumer = Consumer(consumer_config(settings, group_id=f"answers-{uuid.uuid4().hex[:6]}", role="admin"))
    consumer.subscribe([topic])
    codec = make_codec(topic, "Response")
    got: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not ids <= set(got):
        for m in consumer.consume(500, timeout=0.5):
            if m.error() is None:
                event = codec.decode(m.value() or b"")
                if event["request_id"] in ids:
                    got[event["request_id"]] = event
    consumer.close()
    return got


def _ask(key: str, team: str = "search", project: str = "ranker", text: str = "hello") -> Any:
    return build_request(team=team, project=project, model="gpt-4o-mini", api_key=key,
                         messages=[{"role": "user", "content": text}])


def test_break_ins_are_refused_and_a_planted_key_lands_nowhere(
        settings: Settings, topics: dict[str, str], api_keys: dict[tuple[str, str], str],
        pipeline: Components) -> None:
    search, research = api_keys[("search", "ranker")], api_keys[("research", "evals")]
    # a key issued while the workers run, planted: its value is looked for everywhere afterwards
    admin = KeyAdmin(settings, actor="test")
    planted_record, planted = admin.create("support", "chatbot")
    time.sleep(1.0)  # the workers' rings learn it from the keys topic (well under a second)
    legit = [_ask(planted, "support", "chatbot", f"question {n}") for n in range(30)]
    attacks = {
        "other_team": _ask(research),  # research's key, asking as search
        "other_project": _ask(search, project="query-rewrite"),
        "made_up": _ask("sg-" + "A" * 43),
        "hash_of_nothing": _ask(""),
    }
    with RequestProducer(settings) as producer:
        for r in [*legit, *attacks.values(), _ask(search)]:
            producer.send(r)
    answers = _answers(settings, topics["responses"], {r.request_id for r in [*legit, *attacks.values()]})
    assert {answers[r.request_id]["status"] for r in legit} == {"ok"}
    assert {answers[r.request_id]["api_key_id"] for r in legit} == {planted_record.id}
    codes = {name: answers[r.request_id]["reason_code"] for name, r in attacks.items()}
    assert codes == {"other_team": "identity_mismatch", "other_project": "identity_mismatch",
                     "made_up": "unauthenticated", "hash_of_nothing": "unauthenticated"}
    audited = {a["request_id"]: a for a in _decoded(settings, topics["audit"], "AuditEvent")}
    assert audited[attacks["other_team"].request_id]["action"] == "reject"
    assert "identity_mismatch" in audited[attacks["other_team"].request_id]["reason"]
    assert attacks["made_up"].request_id not in audited

    _revoke_while_running(settings, topics, admin, planted_record.id, planted)
    time.sleep(3 * settings.lakehouse.flush_s + 2)  # the sink lands what it saw
    assert find_tables(settings.table_root()), "the sink wrote no tables"
    pipeline.stop()
    _search_everywhere(settings, topics, [planted, search, research])


def _revoke_while_running(settings: Settings, topics: dict[str, str], admin: KeyAdmin, key_id: str,
                          planted: str) -> None:
    """Revoke while the worker runs: refused by the worker and by a second ring (a front door's)."""
    front_door = KeyRing.for_settings(settings)
    follower = front_door.follow(settings, role="frontdoor")
    try:
        front_door.authenticate_raw(planted)
        revoked_at = time.monotonic()
        admin.revoke(key_id)
        while True:
            try:
                front_door.authenticate_raw(planted)
            except KeyRevoked:
                break
            assert time.monotonic() - revoked_at < 5, "the ring still accepts a key revoked 5 s ago"
            time.sleep(0.01)
        ring_s = time.monotonic() - revoked_at
    finally:
        follower.stop()
    probes = []
    with RequestProducer(settings) as producer:
        while time.monotonic() - revoked_at < 5.5:  # one probe every 250 ms from the revocation on
            probes.append((time.monotonic() - revoked_at, _ask(planted, "support", "chatbot")))
            producer.send(probes[-1][1])
            producer.flush()
            time.sleep(0.25)
    probed = _answers(settings, topics["responses"], {r.request_id for _, r in probes})
    refused = [(t, probed[r.request_id]["reason_code"]) for t, r in probes]
    first = min(t for t, code in refused if code == "key_revoked")
    assert all(code == "key_revoked" for t, code in refused if t >= 5.0), refused
    assert first < 5.0
    print(f"revocation: refused by a ring after {ring_s * 1000:.0f} ms, by the worker from a probe sent "
          f"{first * 1000:.0f} ms after it")


def _search_everywhere(settings: Settings, topics: dict[str, str], keys: list[str]) -> None:
    """Every topic of the run dumped, every file under the state directory read: no key anywhere, and
    its client-side hash only where the wire format puts it."""
    raw_secrets = [k.encode() for k in keys]
    hashes = [hash_api_key(k).removeprefix("sha256:").encode() for k in keys]
    names = AdminClient(admin_config(settings, role="admin")).list_topics(timeout=10).topics
    mine = [t for t in names if t.startswith(settings.kafka.topic_prefix)]
    assert {topics["requests"], topics["keys"], topics["responses"]} <= set(mine)
    for topic in mine:
        records = b"\n".join(_dump(settings, topic))
        assert not [s for s in raw_secrets if s in records], f"a raw key in topic {topic}"
        # the client-side hash is the wire format into `requests`, and dead letters keep original bytes
        if topic not in (topics["requests"], topics["deadletter"]):
            assert not [h for h in hashes if h in records], f"a key hash in topic {topic}"
    files = [p for p in settings.state_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files) and any(p.suffix == ".log" for p in files)
    for path in files:
        data = path.read_bytes()
        assert not [s for s in raw_secrets + hashes if s in data], f"a key or its hash in {path}"


def test_a_worker_without_a_keys_topic_fails_at_once_instead_of_refusing_everyone(settings: Settings) -> None:
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="keys topic"):
        KeyRing.for_settings(settings).follow(settings, role="streams")  # no `topics apply` for this prefix
    assert time.monotonic() - started < settings.identity.ready_timeout_s
