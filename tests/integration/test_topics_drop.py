"""`streamgate topics drop` against the real broker: one prefixed deployment's topics and ACLs go, no more."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from typer.testing import CliRunner

from apps.cli.main import app
from apps.demo.processes import write_config
from schemas.topics import load_topic_specs
from streamgate.config import Settings
from streamgate.kafka.clients import admin_client
from streamgate.kafka.topics import apply_spec, deployments

pytestmark = pytest.mark.kafka


def _acls_under(settings: Settings, prefix: str) -> int:
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY,  # type: ignore[arg-type]
                                  None, None, AclOperation.ANY, AclPermissionType.ANY)  # type: ignore[arg-type]
    admin = admin_client(settings)  # held until the answer is in: a collected client cancels it
    bindings = admin.describe_acls(everything, request_timeout=30).result()
    return sum(b.name.startswith(prefix) for b in bindings)


def test_a_deployment_is_listed_then_dropped_with_its_acls(settings: Settings, tmp_path: Path) -> None:
    prefix = settings.kafka.topic_prefix
    nested = settings.kafka.model_copy(update={"topic_prefix": prefix + "x."})
    other = settings.model_copy(update={"kafka": nested})
    apply_spec(settings)
    apply_spec(other)
    # a topic outside the spec under the prefix (a run's own): dropped too, and counted in the question
    admin = admin_client(settings)  # held until the answer is in
    admin.create_topics([NewTopic(prefix + "x.leftover", 1, 1)])[prefix + "x.leftover"].result(30)
    found = deployments(settings)
    assert found[prefix] == found[prefix + "x."] == len(load_topic_specs())
    secured = settings.kafka.security.enabled
    if secured:
        assert _acls_under(settings, prefix + "x.") > 0
        # the nested deployment's ACLs are its own, not drift of the one whose prefix starts theirs
        assert apply_spec(settings)[1].drift == []
    config = str(write_config(settings, tmp_path / "streamgate.yaml"))
    runner = CliRunner()

    listed = runner.invoke(app, ["topics", "drop", "--config", config])
    assert listed.exit_code == 2 and f"{prefix}x.\t{len(load_topic_specs())} topics" in listed.output
    kept = runner.invoke(app, ["topics", "drop", prefix + "x.", "--config", config], input="n\n")
    assert kept.exit_code != 0 and prefix + "x." in deployments(settings)
    assert f"delete the {len(load_topic_specs()) + 1} topics" in kept.output
    unknown = runner.invoke(app, ["topics", "drop", prefix + "nothing.", "--config", config])
    assert unknown.exit_code == 1 and "no deployment" in unknown.output

    dropped = runner.invoke(app, ["topics", "drop", prefix + "x.", "--yes", "--config", config])
    assert dropped.exit_code == 0, dropped.output
    after = deployments(settings)
    assert prefix + "x." not in after and after[prefix] == len(load_topic_specs())  # only the one named
    if secured:
        assert _acls_under(settings, prefix + "x.") == 0 and _acls_under(settings, prefix) > 0
