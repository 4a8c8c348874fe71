"""`streamgate kafka up --brokers 3`: a real 3-node KRaft cluster from the same jars, secured like the
single broker; topics-as-code replicate 3x with min ISR 2; `kafka status` shows the brokers, the active
controller and under-replicated partitions; a killed broker is reported, writes go on with two, and it
catches up after its restart; `kafka down` stops every node."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource

from apps.chaos.brokers import wait_fully_replicated
from apps.demo.processes import write_config
from schemas.topics import Topic, physical_name
from streamgate.config import Settings, load_settings
from streamgate.kafka.clients import admin_client, consumer_config, producer_config
from streamgate.kafka.health import cluster_health
from streamgate.kafka.launcher import LocalKafka
from streamgate.kafka.topics import apply_spec
from tests.conftest import local_broker_settings

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _cluster_settings(state: Path) -> Settings:
    base = local_broker_settings(state)
    local = base.kafka.local.model_copy(update={"heap": "512m"})
    kafka = base.kafka.model_copy(update={"local": local, "topic_prefix": f"c{uuid.uuid4().hex[:6]}."})
    return base.model_copy(update={"kafka": kafka})


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "streamgate"
    return subprocess.run([str(exe), "kafka", *args, "--config", str(config)], capture_output=True, text=True,
                          timeout=240, check=False, env=os.environ | {"COLUMNS": "200"})


def _send(settings: Settings, topic: str, n: int) -> None:
    producer = Producer(producer_config(settings, client_id="cluster-test", role="service"))
    for i in range(n):
        producer.produce(topic, key=f"k{i}".encode(), value=uuid.uuid4().bytes)
    assert producer.flush(60) == 0, "acks=all writes must succeed"


def _replicated_and_secured(cluster: Settings, requests: str) -> None:
    """Replication 3 and min ISR 2 from `apply_spec`, internal topics too; the principals work and the
    authorizer refuses the rest."""
    apply_spec(cluster)
    admin = admin_client(cluster)  # kept: a collected client cancels its pending futures
    metadata = admin.list_topics(timeout=10)
    assert sorted(metadata.brokers) == [1, 2, 3]
    assert {len(p.replicas) for p in metadata.topics[requests].partitions.values()} == {3}
    resource = ConfigResource(ConfigResource.Type.TOPIC, requests)
    described = admin.describe_configs([resource])[resource].result()
    assert described["min.insync.replicas"].value == "2"

    _send(cluster, requests, 50)  # as `service`
    reader = Consumer(consumer_config(cluster, group_id=cluster.kafka.topic_prefix + "x", role="service"))
    try:  # `service` may write requests, never read them
        reader.assign([TopicPartition(requests, 0, 0)])
        errors: list[int] = []
        deadline = time.monotonic() + 20
        while not errors and time.monotonic() < deadline:
            for msg in reader.consume(10, timeout=0.5):
                error = msg.error()
                assert error is not None, "service read requests"
                errors.append(error.code())
        assert KafkaError.TOPIC_AUTHORIZATION_FAILED in errors, errors
    finally:
        reader.close()
    # the transaction state log is created on first use, replicated like the topics
    txn = Producer(producer_config(cluster, client_id="cluster-txn", role="streams")
                   | {"transactional.id": cluster.kafka.topic_prefix + "streamgate-request-path-t"})
    txn.init_transactions(60)
    internal = admin.list_topics(timeout=10).topics["__transaction_state"]
    assert {len(p.replicas) for p in internal.partitions.values()} == {3}


def _kill_and_recover(cluster: Settings, config: Path, requests: str) -> None:
    """kill -9 the busiest leader: writes with acks=all go on with two in-sync replicas, status reports
    it, and after its restart the cluster is fully replicated again."""
    broker = LocalKafka(cluster)
    victim = cluster_health(cluster).leaders([requests]).most_common(1)[0][0]
    broker.stop_node(victim, hard=True)
    deadline = time.monotonic() + 60
    while victim in cluster_health(cluster).brokers and time.monotonic() < deadline:
        time.sleep(0.5)
    _send(cluster, requests, 50)
    health = cluster_health(cluster)
    assert victim not in health.brokers and health.under_replicated, "its replicas should leave the ISRs"
    assert victim not in health.leaders([requests])
    down = _cli(config, "status")
    assert down.returncode == 1 and "2 of 3 brokers alive" in down.stdout
    assert f"broker {victim}" in down.stdout and "down" in down.stdout
    assert "under-replicated 0," not in down.stdout

    broker.start_node(victim)
    wait_fully_replicated(cluster, 120)
    assert cluster_health(cluster).fully_replicated


@pytest.mark.skipif(load_settings().kafka.external, reason="starts its own local cluster")
def test_three_broker_cluster_replicates_reports_and_survives_a_killed_broker(tmp_path: Path) -> None:
    settings = _cluster_settings(tmp_path / "state")
    # the config says one broker: --brokers overrides it for this command (and says to set it)
    config = write_config(settings, tmp_path / "cluster.yaml")
    cluster = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={
        "local": settings.kafka.local.model_copy(update={"brokers": 3})})})
    cluster_config = write_config(cluster, tmp_path / "cluster3.yaml")
    try:
        up = _cli(config, "up", "--brokers", "3")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "3 of 3 brokers alive" in up.stdout and "kafka.local.brokers" in up.stderr

        requests = physical_name(Topic.REQUESTS, cluster.kafka.topic_prefix)
        _replicated_and_secured(cluster, requests)
        status = _cli(cluster_config, "status")
        assert status.returncode == 0, status.stdout + status.stderr
        for node in (1, 2, 3):
            assert f"broker {node}" in status.stdout and "alive" in status.stdout
        assert "active controller: " in status.stdout and "active controller: unknown" not in status.stdout
        assert "under-replicated 0, offline 0" in status.stdout
        _kill_and_recover(cluster, cluster_config, requests)
    finally:
        stopped = _cli(cluster_config, "down")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert all(node.pid() is None for node in LocalKafka(cluster).nodes)
