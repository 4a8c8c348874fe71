"""The launcher on a private broker: idempotent up, clean down, data kept across restarts, clear errors."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from schemas.topics import load_topic_specs
from streamgate.config import Settings, load_settings
from streamgate.kafka import launcher
from streamgate.kafka.clients import consumer_config, producer_config
from streamgate.kafka.launcher import KafkaLauncherError, LocalKafka
from streamgate.kafka.topics import apply_topics
from tests.conftest import local_broker_settings

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_down_and_up_keep_data(tmp_path: Path) -> None:
    settings = local_broker_settings(tmp_path)
    broker = LocalKafka(settings)
    assert broker.status().message == "not running"
    try:
        t0 = time.perf_counter()
        first = broker.up()
        cold = time.perf_counter() - t0
        assert first.running and first.pid
        assert broker.up().pid == first.pid, "a second up must not start another broker"

        specs = [s for s in load_topic_specs() if s.name == "audit"]
        apply_topics(settings, specs)
        producer = Producer(producer_config(settings, client_id="persist", role="admin"))
        payloads = [uuid.uuid4().bytes for _ in range(50)]
        for p in payloads:
            producer.produce("audit", value=p)
        assert producer.flush(30) == 0

        assert not broker.down().running
        assert broker.status().message == "not running"
        t0 = time.perf_counter()
        assert broker.up().running
        warm = time.perf_counter() - t0
        print(f"broker start: first {cold:.1f} s, restart {warm:.1f} s")

        consumer = Consumer(consumer_config(settings, group_id="persist", role="admin"))
        consumer.subscribe(["audit"])
        got: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(got) < len(payloads) and time.monotonic() < deadline:
            got += [m.value() or b"" for m in consumer.consume(100, timeout=0.5) if m.error() is None]
        consumer.close()
        assert sorted(got) == sorted(payloads)
    finally:
        broker.down()
    assert broker.down().message == "stopped"  # idempotent


def test_external_cluster_starts_nothing(kafka_settings: Settings, tmp_path: Path) -> None:
    configured = load_settings(env={"KAFKA_BOOTSTRAP_SERVERS": kafka_settings.kafka.bootstrap(),
                                    "STREAMGATE_STATE_DIR": str(tmp_path)})
    # an external cluster's credentials are the operator's: here, the session broker's file
    settings = configured.model_copy(update={"kafka": configured.kafka.model_copy(
        update={"security": kafka_settings.kafka.security})})
    broker = LocalKafka(settings)
    status = broker.up()
    assert status.external and status.running and status.pid is None
    assert not (tmp_path / "kafka").exists(), "nothing local may be created for an external cluster"
    unreachable = load_settings(env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    with pytest.raises(KafkaLauncherError, match="does not answer"):
        LocalKafka(unreachable).up()


def test_missing_java_or_maven_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings: Settings = local_broker_settings(tmp_path)
    monkeypatch.setattr(launcher.shutil, "which", lambda _name: None)
    with pytest.raises(KafkaLauncherError, match="Java 17\\+ is required"):
        LocalKafka(settings).up()
    monkeypatch.setattr(launcher, "CACHE_DIR", tmp_path / "empty-cache")
    with pytest.raises(KafkaLauncherError, match="Maven is required"):
        launcher.resolve_classpath()


def test_port_taken_by_something_else_is_named(tmp_path: Path, kafka_settings: Settings) -> None:
    settings = local_broker_settings(tmp_path)
    busy = settings.kafka.local.model_copy(update={"port": kafka_settings.kafka.local.port})
    taken = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"local": busy})})
    if kafka_settings.kafka.external:
        pytest.skip("the session broker is external; no local port to collide with")
    with pytest.raises(KafkaLauncherError, match=f"port {busy.port} .* is taken"):
        LocalKafka(taken).up()
