"""confluent-kafka client configurations built from Settings, so every component talks to Kafka alike."""

from __future__ import annotations

import logging
from typing import Any

from streamgate.config import Settings

#: librdkafka's own log lines go through Python logging (a component's log, the demo's log file), never
#: straight to the terminal's stderr, where they interleaved with the demo's console output.
LIBRDKAFKA_LOG = logging.getLogger("streamgate.librdkafka")


def base_config(settings: Settings, client_id: str) -> dict[str, Any]:
    return {"bootstrap.servers": settings.kafka.bootstrap(), "client.id": client_id, "logger": LIBRDKAFKA_LOG}


def producer_config(settings: Settings, *, client_id: str) -> dict[str, Any]:
    """Idempotent producer: broker-side dedup of retries, so a retried send never duplicates an event."""
    return base_config(settings, client_id) | {
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "batch.size": 512 * 1024,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 500_000,
    }


def consumer_config(settings: Settings, *, group_id: str) -> dict[str, Any]:
    """Manual commits and read_committed: a consumer only sees what transactional producers committed."""
    return base_config(settings, group_id) | {
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "fetch.min.bytes": 1,
        "fetch.wait.max.ms": 100,
    }


def reply_consumer_config(settings: Settings, *, client_id: str) -> dict[str, Any]:
    """A reader of its own reply partitions (assigned, no group, never commits): read_committed, so a
    caller sees an answer only once the dispatcher's transaction holding it has committed, and no fetch
    wait when answers are flowing."""
    return base_config(settings, client_id) | {
        "group.id": client_id,  # required by librdkafka; unused: partitions are assigned, nothing committed
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        "fetch.min.bytes": 1,
        "fetch.wait.max.ms": 10,
    }


def admin_config(settings: Settings) -> dict[str, Any]:
    return base_config(settings, "streamgate-admin")
