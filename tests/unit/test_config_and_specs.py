"""The one settings loader and the topic spec: clear errors for broken config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from schemas.topics import TopicSpecError, load_topic_specs, parse_retention, parse_topic_specs
from streamgate.config import ConfigError, load_settings


def test_defaults_and_env_overrides(tmp_path: Path) -> None:
    settings = load_settings(env={})
    assert settings.kafka.bootstrap() == "127.0.0.1:19092" and not settings.kafka.external
    over = load_settings(env={"KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092", "SCHEMA_REGISTRY_URL": "http://r:8081",
                              "STREAMGATE_STATE_DIR": str(tmp_path)})
    assert over.kafka.external and over.kafka.bootstrap() == "k1:9092,k2:9092"
    assert over.schema_registry.url == "http://r:8081" and over.state_dir == tmp_path
    assert over.resolve(Path("kafka")) == tmp_path / "kafka"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("kafka: [unclosed", "not valid YAML"),
        ("- a list", "mapping at the top level"),
        ("kafka:\n  bootstrap_server: x\n", "bootstrap_server"),
        ("kafka:\n  local:\n    port: 70000\n", "port"),
    ],
)
def test_broken_config_is_a_clear_error(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        load_settings(path, env={})


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml", env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(env={"STREAMGATE_CONFIG": str(tmp_path / "nope.yaml")})


def test_the_repo_topic_spec() -> None:
    specs = {s.name: s for s in load_topic_specs()}
    assert specs["usage.aggregates"].cleanup_policy == "compact"
    assert specs["config"].cleanup_policy == "compact" and specs["config"].retention_ms == -1
    assert specs["requests"].retention_ms == 7 * 86_400_000


def test_a_deployment_partition_count_applies_to_topics_that_do_not_pin_their_own() -> None:
    default, eight = ({s.name: s.partitions for s in load_topic_specs(partitions=n)} for n in (None, 8))
    pinned = {name for name, n in default.items() if n != 2}
    assert default["requests"] == 2 and eight["requests"] == 8 and eight["responses"] == 8
    assert default["replies"] == eight["replies"] == 6, "one partition per waiting reader, pinned"
    assert pinned and all(eight[name] == default[name] for name in pinned), "a topic's own count stays"


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"topics": [{"name": "a", "value_schema": "Request", "cleanup_policy": "shred"}]}, "cleanup_policy"),
        ({"topics": [{"name": "a", "value_schema": "Request", "retention": "a week"}]}, "a week"),
        ({"topics": [{"name": "a", "value_schema": "Request", "colour": "red"}]}, "colour"),
        ({"topics": [{"name": "a", "value_schema": "R"}, {"name": "a", "value_schema": "R"}]}, "duplicate"),
        ({"topics": [{"name": "bad name", "value_schema": "R"}]}, "name"),
    ],
)
def test_bad_topic_specs(raw: dict[str, object], needle: str) -> None:
    with pytest.raises(TopicSpecError, match=needle):
        parse_topic_specs(raw)


def test_retention_parsing() -> None:
    assert parse_retention("30s") == 30_000 and parse_retention("forever") == -1 and parse_retention(5) == 5


def test_a_local_cluster_bootstraps_from_every_broker() -> None:
    settings = load_settings(env={})
    local = settings.kafka.local.model_copy(update={"brokers": 3})
    cluster = settings.kafka.model_copy(update={"local": local})
    assert cluster.bootstrap() == "127.0.0.1:19092,127.0.0.1:19102,127.0.0.1:19112"
    assert local.controller_ports() == [19093, 19103, 19113]
    with pytest.raises(ValueError, match="distinct ports"):
        type(local).model_validate({"brokers": 3, "port": 19092, "controller_port": 19102})


def test_replication_follows_the_cluster_size_without_editing_the_spec() -> None:
    from schemas.topics import replication_for

    assert [replication_for(n) for n in (1, 2, 3, 5)] == [(1, 1), (2, 1), (3, 2), (3, 2)]
    requests = next(s for s in load_topic_specs() if s.name == "requests")
    assert (requests.replication_factor, requests.min_insync_replicas) == (3, 2)
    one, three = requests.on_cluster(1), requests.on_cluster(3)
    assert (one.replication_factor, one.topic_config()["min.insync.replicas"]) == (1, "1")
    assert (three.replication_factor, three.topic_config()["min.insync.replicas"]) == (3, "2")


def test_the_dispatch_commit_interval_follows_who_waits_for_the_commit() -> None:
    auto = load_settings(env={}).dispatch
    assert auto.commit_interval_ms is None  # the shipped config leaves it to the deployment
    assert auto.commit_interval_s(answer_before_commit=True) == 0.25  # only downstream readers wait
    assert auto.commit_interval_s(answer_before_commit=False) == 0.0  # callers wait: commit at once
    pinned = auto.model_copy(update={"commit_interval_ms": 100})
    assert pinned.commit_interval_s(True) == pinned.commit_interval_s(False) == 0.1


def test_broker_properties_from_config_win_over_the_launchers(tmp_path: Path) -> None:
    from streamgate.kafka.launcher import KafkaNode, broker_threads

    config = tmp_path / "streamgate.yaml"
    config.write_text("kafka:\n  security:\n    protocol: PLAINTEXT\n  local:\n    properties:\n"
                      "      num.io.threads: '2'\n      transaction.partition.verification.enable: 'false'\n")
    settings = load_settings(config, env={"STREAMGATE_STATE_DIR": str(tmp_path / "state")})
    written = KafkaNode(settings)._server_properties().read_text().splitlines()
    assert "num.io.threads=2" in written and "num.io.threads=4" not in written  # overridden, not doubled
    assert "transaction.partition.verification.enable=false" in written  # added
    threads = broker_threads(os.cpu_count() or 1)  # the launcher's own, untouched
    assert f"num.network.threads={threads['num.network.threads']}" in written


def test_broker_threads_follow_the_cores_up_to_kafkas_defaults() -> None:
    from streamgate.kafka.launcher import broker_threads

    assert broker_threads(2) == {"num.io.threads": "2", "num.network.threads": "1"}
    assert broker_threads(1) == {"num.io.threads": "1", "num.network.threads": "1"}
    assert broker_threads(64) == {"num.io.threads": "8", "num.network.threads": "3"}
