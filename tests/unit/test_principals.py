"""The principals spec (schemas/principals.yaml): least privilege as checkable rules, and the pure parts
of the credentials handling. The broker enforcing them is tested in tests/integration/test_security.py."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import get_args

import pytest

from schemas.principals import AclRule, PrincipalSpecError, acl_rules, load_principals, parse_principals
from schemas.topics import load_topic_specs
from streamgate.config import KafkaSettings, Principals, Role, SecuritySettings, Settings
from streamgate.kafka.security import (
    KafkaSecurityError,
    client_security,
    ensure_credentials,
    load_credentials,
)

SPEC = load_principals()


def writers(topic: str) -> set[str]:
    return {role for role, p in SPEC.items() if topic in p.write}


def test_every_component_role_is_declared_and_admin_is_not() -> None:
    roles = set(get_args(Role))
    assert set(Principals.model_fields) == roles
    assert set(SPEC) == roles - {"admin"}, "admin is the super user; every other role needs its rights here"


@pytest.mark.parametrize(("topic", "only"), [  # the fused gateway worker (apps/gateway/) is both stages
    ("requests.guarded", {"streams", "gateway"}), ("requests.routed", {"streams", "gateway"}),
    ("requests.rejected", {"streams", "gateway"}), ("responses", {"dispatcher", "gateway"}),
    ("telemetry", {"dispatcher", "gateway"}), ("usage.aggregates", {"aggregator"}),
    ("replies", {"dispatcher", "gateway"}), ("replies.chunks", {"dispatcher", "gateway"}),
    ("config", set()),  # only the admin publishes policy
])
def test_only_its_stage_writes_a_topic(topic: str, only: set[str]) -> None:
    assert writers(topic) == only


def test_service_may_only_write_requests_and_read_replies() -> None:
    service = SPEC["service"]
    assert service.write == ("requests",)
    assert set(service.read) == {"replies", "replies.chunks"}, "never `responses`: every team's answers"
    assert not (service.own_topics or service.transactional_ids)


def test_the_sink_may_read_every_topic_it_lands() -> None:
    from lakehouse.tables import BRONZE

    assert {str(t.topic) for t in BRONZE} <= set(SPEC["lakehouse"].read)


def test_configured_groups_and_transactional_ids_fall_under_their_principals_prefixes() -> None:
    s = Settings()
    for role, group in (("streams", s.streams.group_id), ("dispatcher", s.dispatch.group_id),
                        ("aggregator", s.aggregation.group_id), ("lakehouse", s.lakehouse.group_id)):
        assert any(group.startswith(g) for g in SPEC[role].groups), role
    for role in ("streams", "dispatcher", "aggregator"):  # the transactional stages
        assert SPEC[role].transactional_ids


def test_rules_take_the_deployment_prefix_and_principal_names() -> None:
    names = {role: f"u-{role}" for role in SPEC}
    rules = acl_rules(SPEC, names, "t1.")
    assert AclRule("u-service", "topic", "t1.requests", "literal", "write") in rules
    txn = AclRule("u-streams", "transactional_id", "t1.streamgate-request-path", "prefixed", "write")
    assert txn in rules
    assert all(r.name.startswith("t1.") for r in rules)
    service_topics = {(r.name, r.operation) for r in rules
                      if r.principal == "u-service" and r.resource_type == "topic"}
    assert service_topics == {("t1.requests", "write"), ("t1.replies", "read"), ("t1.replies.chunks", "read")}


def test_unknown_topics_and_keys_are_errors() -> None:
    topics = [t.name for t in load_topic_specs()]
    with pytest.raises(PrincipalSpecError, match=r"not in schemas/topics\.yaml: nope"):
        parse_principals({"principals": {"service": {"write": ["nope"]}}}, topics=topics)
    with pytest.raises(PrincipalSpecError):
        parse_principals({"principals": {"service": {"writes": ["requests"]}}}, topics=topics)


def _settings(tmp_path: Path, protocol: str = "SASL_PLAINTEXT") -> Settings:
    security = SecuritySettings(protocol=protocol)  # type: ignore[arg-type]
    return Settings(state_dir=tmp_path, kafka=KafkaSettings(security=security))


def test_credentials_are_generated_once_private_and_per_principal(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with pytest.raises(KafkaSecurityError, match="no Kafka credentials"):
        client_security(settings, "service")
    first = ensure_credentials(settings, ["admin", "service"])
    path = tmp_path / "kafka-credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_credentials(settings, ["service", "streams"])["service"] == first["service"]
    assert set(load_credentials(settings)) == {"admin", "service", "streams"}
    assert len({first["admin"], first["service"]}) == 2 and len(first["admin"]) >= 24
    props = client_security(settings, "service")
    assert props["sasl.username"] == "service" and props["sasl.password"] == first["service"]
    assert props["sasl.mechanism"] == "SCRAM-SHA-512" and "ssl.ca.location" not in props
    with pytest.raises(KafkaSecurityError, match="no password for Kafka principal 'dispatcher'"):
        client_security(settings, "dispatcher")
    assert json.loads(path.read_text()) == load_credentials(settings)


def test_plaintext_needs_no_credentials_and_tls_names_the_ca(tmp_path: Path) -> None:
    assert client_security(_settings(tmp_path, "PLAINTEXT"), "service") == {}
    tls = _settings(tmp_path, "SASL_SSL")
    ensure_credentials(tls, ["service"])
    assert client_security(tls, "service")["ssl.ca.location"] == str(tmp_path / "kafka-tls" / "ca.pem")


def test_child_configs_name_the_credentials_file_but_hold_no_password(tmp_path: Path) -> None:
    import yaml

    from apps.demo.processes import write_config

    settings = _settings(tmp_path / "state")
    password = ensure_credentials(settings, ["service"])["service"]
    path = write_config(settings, tmp_path / "child.yaml")
    assert password not in path.read_text()
    security = yaml.safe_load(path.read_text())["kafka"]["security"]
    assert security["credentials_file"] == str(tmp_path / "state" / "kafka-credentials.json")
    child = Settings.model_validate(yaml.safe_load(path.read_text()) | {"state_dir": str(tmp_path / "x")})
    assert client_security(child, "service")["sasl.password"] == password
