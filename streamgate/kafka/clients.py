"""confluent-kafka client configurations built from Settings, so every component talks to Kafka alike."""

from __future__ import annotations

import logging
from typing import Any

from streamgate.config import Settings

#: librdkafka's own log lines go through Python logging (a component's log, the demo's log file), never
#: straight to the terminal's stderr, where they interleaved with the demo's console output.
LIBRDKAFKA_LOG = logging.getLogger("streamgate.librdkafka")
#: A consumer on the latency path waits at most this long on the broker for a fetch that finds nothing;
#: a fetch that finds anything returns at once. Bounds the cost of a readiness signal the broker misses.
LOW_LATENCY_FETCH_WAIT_MS = 10


def base_config(settings: Settings, client_id: str) -> dict[str, Any]:
    return {"bootstrap.servers": settings.kafka.bootstrap(), "client.id": client_id, "logger": LIBRDKAFKA_LOG}


def producer_config(settings: Settings, *, client_id: str) -> dict[str, Any]:
    """Idempotent producer: broker-side dedup of retries, so a retried send never duplicates an event."""
    return base_config(settings, client_id) | {
        "enable.idempotence": True,
        "acks": "all",
        # a request waits for its batch this long in the client and in every stage that forwards it
        # without a transaction in between (librdkafka's default is 5 ms); transactions flush at commit
        "linger.ms": 1,
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
    """A reader of its own reply partitions (assigned, no group, never commits), also of `responses`.

    read_committed: a caller sees an answer only once the dispatcher's transaction holding it has
    committed; the dispatcher commits each request's answer exactly once, so a reader never sees two
    answers for one request id (nothing to deduplicate) and what it reads is what the telemetry, the
    aggregates and the lakehouse count. The dispatcher commits as soon as an answer is ready and its
    previous commit has ended (`dispatch.commit_interval_ms: 0`), so read_committed costs one
    transaction commit, not a commit cadence (docs/benchmarks.md, latency). A fetch returns as soon as
    anything is readable (`fetch.min.bytes` 1); the short `fetch.wait.max.ms` only bounds how long a
    fetch sits on the broker when nothing is."""
    return base_config(settings, client_id) | {
        "group.id": client_id,  # required by librdkafka; unused: partitions are assigned, nothing committed
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        "fetch.min.bytes": 1,
        "fetch.wait.max.ms": LOW_LATENCY_FETCH_WAIT_MS,
    }


def admin_config(settings: Settings) -> dict[str, Any]:
    return base_config(settings, "streamgate-admin")


def routed_consumer_config(settings: Settings, *, group_id: str) -> dict[str, Any]:
    """How the dispatcher reads the request path's outcomes (requests.routed, requests.rejected):
    read_committed, or read_uncommitted with `dispatch.read_routed_uncommitted` (the dispatcher answers
    each request id once, so a decision replayed after an aborted transaction is not answered again)."""
    isolation = "read_uncommitted" if settings.dispatch.read_routed_uncommitted else "read_committed"
    return consumer_config(settings, group_id=group_id) | {
        "isolation.level": isolation, "fetch.wait.max.ms": LOW_LATENCY_FETCH_WAIT_MS}
