"""Schema registry state, made durable as records on a compacted Kafka topic (as Confluent's is).

Ids are global and stable: the same canonical schema always gets the same id, in every subject, across
restarts, because start-up replays the topic before serving.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic
from fastavro import parse_schema
from fastavro.schema import to_parsing_canonical_form

from schemas.topics import replication_for
from streamgate.config import Settings
from streamgate.kafka.clients import admin_client, consumer_config, group_name, producer_config
from streamgate.kafka.topics import cluster_size


def canonical(schema_str: str) -> str:
    """Parsing Canonical Form: two spellings of one schema register once."""
    return str(to_parsing_canonical_form(parse_schema(json.loads(schema_str))))


@dataclass
class SubjectVersion:
    subject: str
    version: int
    schema_id: int
    schema: str
    deleted: bool = False


@dataclass
class RegistryState:
    """The in-memory view; `apply` is the only mutation, used both live and on replay."""

    schemas: dict[int, str] = field(default_factory=dict)
    ids_by_canonical: dict[str, int] = field(default_factory=dict)
    subjects: dict[str, list[SubjectVersion]] = field(default_factory=dict)
    config: dict[str, str] = field(default_factory=dict)  # "" = global level

    def apply(self, record: dict[str, Any]) -> None:
        if record["type"] == "SCHEMA":
            sv = SubjectVersion(record["subject"], record["version"], record["id"], record["schema"],
                                record.get("deleted", False))
            self.schemas[sv.schema_id] = sv.schema
            self.ids_by_canonical.setdefault(canonical(sv.schema), sv.schema_id)
            versions = self.subjects.setdefault(sv.subject, [])
            versions[:] = [v for v in versions if v.version != sv.version] + [sv]
            versions.sort(key=lambda v: v.version)
        elif record["type"] == "CONFIG":
            self.config[record.get("subject") or ""] = record["compatibility"]

    def live(self, subject: str) -> list[SubjectVersion]:
        return [v for v in self.subjects.get(subject, []) if not v.deleted]

    def next_id(self) -> int:
        return max(self.schemas, default=0) + 1


class KafkaRegistryStore:
    """Appends registry records to a compacted topic and replays them at start-up."""

    def __init__(self, settings: Settings, topic: str = "_schemas") -> None:
        self.topic = topic
        self.settings = settings  # connects as the `registry` principal, owner of its topic
        self.state = RegistryState()
        self.lock = threading.Lock()
        self._ensure_topic()
        self._producer = Producer(producer_config(settings, client_id="streamgate-registry", role="registry"))
        self._replay()

    def _ensure_topic(self) -> None:
        admin = admin_client(self.settings, role="registry", client_id="streamgate-registry")
        metadata = admin.list_topics(timeout=15)
        if self.topic in metadata.topics:
            return
        # replicated like every topic of the spec: 3 / min ISR 2 on a cluster, 1 / 1 on one broker
        replicas, min_isr = replication_for(cluster_size(metadata))
        config = {"cleanup.policy": "compact", "min.insync.replicas": str(min_isr)}
        futures = admin.create_topics([NewTopic(self.topic, 1, replicas, config=config)])
        for fut in futures.values():
            try:
                fut.result()
            except Exception as exc:  # created concurrently by another instance
                if "already exists" not in str(exc).lower():
                    raise

    def _replay(self) -> None:
        consumer = Consumer(consumer_config(self.settings, role="registry",
                                            group_id=group_name(self.settings, "streamgate-registry-replay")))
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(self.topic, 0), timeout=15)
            if high <= low:
                return
            consumer.assign([TopicPartition(self.topic, 0, low)])
            position = low
            while position < high:
                for msg in consumer.consume(num_messages=500, timeout=1.0):
                    if msg.error():
                        continue
                    position = (msg.offset() or 0) + 1
                    if msg.value():
                        self.state.apply(json.loads(msg.value() or b"{}"))
        finally:
            consumer.close()

    def append(self, key: dict[str, Any], record: dict[str, Any]) -> None:
        """Durably write, then apply: a 200 response means the record is on the topic."""
        self._producer.produce(self.topic, key=json.dumps(key, sort_keys=True).encode(),
                               value=json.dumps(record).encode())
        if self._producer.flush(15) != 0:
            raise RuntimeError("the registry topic did not acknowledge the write")
        self.state.apply(record)
