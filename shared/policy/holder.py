"""The policy in force, replaced live when a newer version arrives on the compacted config topic.

Every worker must see every config record, so the follower reads the topic without a consumer group
(all partitions, from the beginning), unlike the request-path agents which share partitions.
"""

from __future__ import annotations

import logging
import threading
import time

import yaml
from confluent_kafka import Consumer, TopicPartition

from schemas import EventDecodeError, make_codec
from schemas.topics import Topic, physical_name
from shared.policy.config import GatewayPolicy, PolicyConfigError, parse_policy
from streamgate.config import Role, Settings
from streamgate.kafka.clients import consumer_config, group_name

log = logging.getLogger(__name__)
POLICY_KIND, POLICY_NAME = "policy", "gateway"


class PolicyHolder:
    def __init__(self, initial: GatewayPolicy) -> None:
        self._policy = initial
        self.updates = 0

    @property
    def policy(self) -> GatewayPolicy:
        return self._policy

    def offer(self, candidate: GatewayPolicy) -> bool:
        """Adopt `candidate` if it differs from the current policy; versions must differ too."""
        if candidate.fingerprint == self._policy.fingerprint:
            return False
        if candidate.version == self._policy.version:
            log.warning("ignoring a changed policy that kept version %s: bump the version", candidate.version)
            return False
        self._policy = candidate
        self.updates += 1
        log.info("gateway policy %s is now in force", candidate.version)
        return True


class PolicyFollower(threading.Thread):
    """Tails the config topic and offers each gateway-policy record to the holder."""

    def __init__(self, settings: Settings, holder: PolicyHolder, *, role: Role) -> None:
        super().__init__(name="policy-follower", daemon=True)
        self.holder = holder
        self.topic = physical_name(Topic.CONFIG, settings.kafka.topic_prefix)
        self.codec = make_codec(self.topic, "ConfigRecord", settings.schema_registry.url)
        # assigned, never committed: the group only names the reader (under the role's `replay-` ACL)
        self.consumer = Consumer(consumer_config(settings, group_id=group_name(settings, "replay-policy"),
                                                 role=role))
        self.stopping = threading.Event()

    def run(self) -> None:
        meta = self.consumer.list_topics(self.topic, timeout=10).topics[self.topic]
        self.consumer.assign([TopicPartition(self.topic, p, 0) for p in meta.partitions])
        while not self.stopping.is_set():
            for msg in self.consumer.consume(100, timeout=0.5):
                if msg.error() is None and msg.value():
                    self._apply(msg.value() or b"")
        self.consumer.close()

    def _apply(self, value: bytes) -> None:
        try:
            record = self.codec.decode(value)
            if (record["kind"], record["name"]) != (POLICY_KIND, POLICY_NAME):
                return
            source = f"config topic {record['version']}"
            self.holder.offer(parse_policy(yaml.safe_load(record["body"]), source))
        except (EventDecodeError, PolicyConfigError, yaml.YAMLError) as exc:
            log.error("config record rejected, keeping policy %s: %s", self.holder.policy.version, exc)

    def stop(self) -> None:
        self.stopping.set()


def published_policy(settings: Settings, *, role: Role = "admin",
                     timeout_s: float = 10.0) -> GatewayPolicy | None:
    """The gateway policy last published on the config topic (what running processors follow), or None
    when none was ever published. Reads the compacted topic from the beginning to its end, once."""
    topic = physical_name(Topic.CONFIG, settings.kafka.topic_prefix)
    codec = make_codec(topic, "ConfigRecord", settings.schema_registry.url)
    consumer = Consumer(consumer_config(settings, group_id=group_name(settings, "replay-policy"), role=role))
    found: GatewayPolicy | None = None
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1]
                for p in meta.partitions}
        pending = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, 0) for p in pending])
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(100, timeout=0.5):
                if msg.error() is not None:
                    continue
                if msg.value():
                    record = codec.decode(msg.value() or b"")
                    if (record["kind"], record["name"]) == (POLICY_KIND, POLICY_NAME):
                        source = f"config topic {record['version']}"
                        found = parse_policy(yaml.safe_load(record["body"]), source)
                if (msg.offset() or 0) + 1 >= ends[msg.partition() or 0]:
                    pending.discard(msg.partition() or 0)
    finally:
        consumer.close()
    return found
