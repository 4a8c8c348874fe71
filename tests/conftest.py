"""Test fixtures: one real Kafka broker per test session, and a unique topic prefix per test.

The broker is started by the same launcher `streamgate kafka up` uses, on free ports and a temporary
state directory, so a developer's own broker is never touched. With KAFKA_BOOTSTRAP_SERVERS set, the
suite uses that cluster instead and starts nothing.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas.topics import load_topic_specs, physical_name
from streamgate.config import Settings, load_settings
from streamgate.kafka.launcher import LocalKafka
from streamgate.kafka.topics import apply_topics


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def local_broker_settings(state_dir: Path) -> Settings:
    """Settings for a private local broker on free ports under `state_dir`."""
    base = load_settings()
    local = base.kafka.local.model_copy(update={"port": free_port(), "controller_port": free_port(),
                                                "heap": "768m"})
    kafka = base.kafka.model_copy(update={"bootstrap_servers": None, "local": local})
    return base.model_copy(update={"state_dir": state_dir, "kafka": kafka})


@pytest.fixture(scope="session")
def kafka_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings pointing at the session's broker (external if configured, else started here)."""
    configured = load_settings()
    if configured.kafka.external:
        yield configured
        return
    settings = local_broker_settings(tmp_path_factory.mktemp("kafka-state"))
    broker = LocalKafka(settings)
    broker.up()
    try:
        yield settings
    finally:
        broker.down()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_settings: Settings) -> str:
    return kafka_settings.kafka.bootstrap()


@pytest.fixture
def settings(kafka_settings: Settings, tmp_path: Path) -> Settings:
    """Per-test settings: the shared broker, a unique topic prefix and a private state directory."""
    kafka = kafka_settings.kafka.model_copy(update={"topic_prefix": f"t{uuid.uuid4().hex[:8]}."})
    return kafka_settings.model_copy(update={"kafka": kafka, "state_dir": tmp_path / "state"})


@pytest.fixture
def topics(settings: Settings) -> dict[str, str]:
    """The whole topic spec applied under this test's prefix; logical name -> physical name."""
    specs = load_topic_specs()
    apply_topics(settings.kafka.bootstrap(), specs, prefix=settings.kafka.topic_prefix)
    return {s.name: physical_name(s.name, settings.kafka.topic_prefix) for s in specs}
