"""Break-in attempts against the real, secured broker (SASL/SCRAM + ACLs from schemas/principals.yaml).

Each test tries what an attacker or a misconfigured service would: write where its principal may not,
connect with a wrong password, read a topic it has no right to, and checks the broker refuses it.
"""

from __future__ import annotations

import json
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from typer.testing import CliRunner

from apps.cli.main import app
from apps.demo.processes import write_config
from schemas.principals import AclRule, load_principals
from streamgate.config import Settings
from streamgate.kafka.acls import apply_acls, binding
from streamgate.kafka.clients import admin_client, base_config, consumer_config, producer_config
from streamgate.kafka.launcher import LocalKafka
from streamgate.kafka.security import credentials_path
from streamgate.kafka.topics import apply_spec
from tests.conftest import free_port, local_broker_settings
from tests.helpers.dispatch import DispatchRig, routed

pytestmark = pytest.mark.kafka


def _produce(config: dict[str, Any], topic: str, values: list[bytes], timeout_s: float = 20) -> list[Any]:
    """Delivery errors (None for a delivered record) of `values` sent to `topic` with `config`."""
    results: list[Any] = []
    producer = Producer(config | {"message.timeout.ms": int(timeout_s * 1000)})
    for v in values:
        producer.produce(topic, v, on_delivery=lambda err, _msg: results.append(err))
    producer.flush(timeout_s + 5)
    return results


def _cli_credentials(settings: Settings, tmp_path: Path, principal: str) -> dict[str, Any]:
    """The client config `streamgate kafka credentials --principal` prints: what a service is handed."""
    config = write_config(settings, tmp_path / f"creds-{principal}.yaml")
    args = ["kafka", "credentials", "--principal", principal, "--config", str(config)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    props: dict[str, Any] = json.loads(result.output)
    assert props["sasl.username"] == principal and props["security.protocol"].startswith("SASL")
    return props


def _end_offsets(settings: Settings, topic: str) -> int:
    consumer = Consumer(consumer_config(settings, group_id=f"probe-{uuid.uuid4().hex[:6]}", role="admin"))
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts)
    finally:
        consumer.close()


@pytest.fixture
def rig(settings: Settings, topics: dict[str, str], tmp_path: Path) -> Iterator[DispatchRig]:
    rig = DispatchRig(settings, topics, tmp_path, free_port())
    rig.simulator.start()
    rig.start_dispatcher()
    try:
        yield rig
    finally:
        rig.close()


def test_service_cannot_write_routed_and_nothing_is_dispatched(rig: DispatchRig, tmp_path: Path) -> None:
    settings, topics = rig.settings, rig.topics
    service = _cli_credentials(settings, tmp_path, "service")
    planted = [routed([{"model": "gpt-4o-mini"}], content="free tokens for me") for _ in range(5)]
    errors = _produce(service, topics["requests.routed"], [rig.codec.encode(e) for e in planted])
    assert len(errors) == 5 and all(e is not None and e.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
                                    for e in errors), errors
    assert _end_offsets(settings, topics["requests.routed"]) == 0, "a refused record must not land"

    # the same credentials may write `requests`: the refusal is the ACL, not a broken login
    assert _produce(service, topics["requests"], [b"not even avro"]) == [None]

    # the dispatcher runs and answers what the request path (here the admin) routes, and nothing else
    control = routed([{"model": "gpt-4o-mini"}])
    rig.send([control])
    rig.collect({control["request_id"]}, timeout_s=90, linger_s=2)
    assert rig.responses[control["request_id"]][0]["status"] == "ok"
    assert not {e["request_id"] for e in planted} & (set(rig.responses) | set(rig.telemetry))
    assert len(rig.telemetry) == 1, "exactly one provider call: the control request's"


def test_wrong_password_and_unknown_user_cannot_connect(settings: Settings, topics: dict[str, str]) -> None:
    good = base_config(settings, "intruder", role="service")
    for who, password in (("service", "not-the-password"), ("nobody", "whatever")):
        seen: list[KafkaError] = []
        config = good | {"sasl.username": who, "sasl.password": password, "error_cb": seen.append}
        errors = _produce(config, topics["requests"], [b"x"], timeout_s=8)
        assert errors and errors[0] is not None, f"{who} delivered a record with a wrong password"
        assert any(e.code() == KafkaError._AUTHENTICATION for e in seen), seen
    # and no SASL at all: the listener does not speak to an unauthenticated client
    plain = {"bootstrap.servers": settings.kafka.bootstrap(), "error_cb": lambda _e: None}
    assert _produce(plain, topics["requests"], [b"x"], timeout_s=8)[0] is not None
    assert _end_offsets(settings, topics["requests"]) == 0


@pytest.mark.parametrize(("role", "topic"), [("service", "responses"), ("service", "requests"),
                                             ("frontdoor", "responses"),
                                             ("aggregator", "requests"), ("lakehouse", "config")])
def test_principal_cannot_read_a_topic_without_an_acl(settings: Settings, topics: dict[str, str],
                                                      role: str, topic: str) -> None:
    """Each reads as a group its principal may use (so the topic ACL is what refuses it); `service` has
    no group at all, so it is refused at the group or the topic, whichever the broker checks first."""
    _produce(producer_config(settings, client_id="seed", role="admin"), topics[topic], [b"secret"])
    groups = load_principals()[role].groups
    group = settings.kafka.topic_prefix + (groups[0] if groups else "") + uuid.uuid4().hex[:4]
    consumer = Consumer(consumer_config(settings, group_id=group, role=role))  # type: ignore[arg-type]
    try:
        consumer.subscribe([topics[topic]])
        errors: list[int] = []
        deadline = time.monotonic() + 20
        while not errors and time.monotonic() < deadline:
            for msg in consumer.consume(10, timeout=0.5):
                assert msg.error() is not None, f"{role} read {topic}: {msg.value()!r}"
                errors.append(msg.error().code())
        refusals = {KafkaError.TOPIC_AUTHORIZATION_FAILED}
        if not groups:
            refusals.add(KafkaError.GROUP_AUTHORIZATION_FAILED)
        assert refusals & set(errors), errors
    finally:
        consumer.close()


def test_acls_are_idempotent_and_drift_is_reported(settings: Settings, topics: dict[str, str]) -> None:
    admin = admin_client(settings)
    again = apply_acls(settings, admin)
    assert again.created == [] and again.drift == [] and again.unchanged > 0
    service = settings.kafka.security.principal("service")
    extra = binding(AclRule(service, "topic", topics["responses"], "literal", "read"))  # granted by hand
    for fut in admin.create_acls([extra]).values():
        fut.result()
    drift: list[str] = []
    deadline = time.monotonic() + 20
    while not drift and time.monotonic() < deadline:
        drift = apply_acls(settings, admin, dry_run=True).drift
    assert len(drift) == 1 and "User:service" in drift[0] and topics["responses"] in drift[0]


def test_credentials_file_is_private_and_covers_every_principal(kafka_settings: Settings) -> None:
    path = credentials_path(kafka_settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    names = set(json.loads(path.read_text()))
    assert {"admin", *load_principals()} <= names


@pytest.mark.slow
def test_tls_broker_starts_and_clients_connect_over_sasl_ssl(tmp_path: Path) -> None:
    base = local_broker_settings(tmp_path)
    security = base.kafka.security.model_copy(update={"protocol": "SASL_SSL"})
    settings = base.model_copy(update={"kafka": base.kafka.model_copy(
        update={"security": security, "topic_prefix": "tls."})})
    broker = LocalKafka(settings)
    try:
        assert broker.up().running
        apply_spec(settings)
        service = _cli_credentials(settings, tmp_path, "service")
        assert service["security.protocol"] == "SASL_SSL" and Path(service["ssl.ca.location"]).exists()
        assert _produce(service, "tls.requests", [b"over tls"]) == [None]
        refused = _produce(service, "tls.requests.routed", [b"x"])
        assert refused[0] is not None and refused[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
        # a client that does not speak TLS to the TLS listener gets nowhere
        plaintext = service | {"security.protocol": "SASL_PLAINTEXT", "error_cb": lambda _e: None}
        plaintext.pop("ssl.ca.location")
        assert _produce(plaintext, "tls.requests", [b"x"], timeout_s=8)[0] is not None
        assert _end_offsets(settings, "tls.requests") == 1
    finally:
        broker.down()
