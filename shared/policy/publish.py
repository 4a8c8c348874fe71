"""Publish a gateway policy to the compacted config topic, where running processors pick it up.

The document is validated before it is sent (a broken policy never reaches the topic), and the change
itself is an audit event.
"""

from __future__ import annotations

import getpass
import hashlib
import time
import uuid
from pathlib import Path

import yaml
from confluent_kafka import Producer

from schemas import make_codec
from schemas.topics import Topic, physical_name
from shared.policy.config import GatewayPolicy, parse_policy
from shared.policy.holder import POLICY_KIND, POLICY_NAME
from streamgate.config import Settings
from streamgate.kafka.clients import producer_config


def publish_policy(settings: Settings, path: Path, *, actor: str | None = None) -> GatewayPolicy:
    body = path.read_text()
    policy = parse_policy(yaml.safe_load(body), str(path))
    who = actor or getpass.getuser()
    now = int(time.time() * 1000)
    prefix, registry = settings.kafka.topic_prefix, settings.schema_registry.url
    config_topic, audit_topic = physical_name(Topic.CONFIG, prefix), physical_name(Topic.AUDIT, prefix)
    record = {"kind": POLICY_KIND, "name": POLICY_NAME, "version": policy.version,
              "sha256": hashlib.sha256(body.encode()).hexdigest(), "body": body, "created_at": now,
              "created_by": who}
    audit = {"event_id": str(uuid.uuid4()), "occurred_at": now, "actor": who, "action": "config_change",
             "resource": f"config:{POLICY_KIND}/{POLICY_NAME}", "decision": "published",
             "reason": f"gateway policy {policy.version} published", "request_id": None, "team": None,
             "config_version": policy.version, "details": {"sha256": record["sha256"], "source": str(path)}}
    producer = Producer(producer_config(settings, client_id="streamgate-config", role="admin"))
    producer.produce(config_topic, key=f"{POLICY_KIND}/{POLICY_NAME}".encode(),
                     value=make_codec(config_topic, "ConfigRecord", registry).encode(record))
    audit_codec = make_codec(audit_topic, "AuditEvent", registry)
    producer.produce(audit_topic, key=b"config", value=audit_codec.encode(audit))
    if producer.flush(30):
        raise RuntimeError("the config topic did not acknowledge the policy")
    return policy
