"""confluent-kafka client configurations built from Settings, so every component talks to Kafka alike.

The one place clients get their configuration: each names its `role`, and connects as that component's
principal (SASL/SCRAM from the credentials file, TLS when configured; streamgate/kafka/security.py), so
the broker's ACLs (schemas/principals.yaml) decide what it may read and write.
"""

from __future__ import annotations

import logging
from typing import Any

from streamgate.config import Role, Settings
from streamgate.kafka.security import client_security

#: librdkafka's own log lines go through Python logging (a component's log, the demo's log file), never
#: straight to the terminal's stderr, where they interleaved with the demo's console output.
LIBRDKAFKA_LOG = logging.getLogger("streamgate.librdkafka")
#: How long a fetch that finds nothing waits on the broker. A fetch returns as soon as anything is readable
#: (`fetch.min.bytes` 1), also when a transaction's markers make records readable, so this bounds only
#: idle traffic: every idle consumer sends 1000 / FETCH_WAIT_MS fetches a second. At 10 ms (the value
#: before) the idle broker spent 187 ms of CPU a second against 117 ms at 100, with the same answer
#: latency (p50 within noise, docs/benchmarks.md, latency).
FETCH_WAIT_MS = 100


def base_config(settings: Settings, client_id: str, *, role: Role) -> dict[str, Any]:
    return {"bootstrap.servers": settings.kafka.bootstrap(), "client.id": client_id, "logger": LIBRDKAFKA_LOG,
            **client_security(settings, role)}


def producer_config(settings: Settings, *, client_id: str, role: Role) -> dict[str, Any]:
    """Idempotent producer: broker-side dedup of retries, so a retried send never duplicates an event."""
    return base_config(settings, client_id, role=role) | {
        "enable.idempotence": True,
        "acks": "all",
        # a request waits for its batch this long in the client and in every stage that forwards it
        # without a transaction in between (librdkafka's default is 5 ms); transactions flush at commit
        "linger.ms": 1,
        "batch.size": 512 * 1024,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 500_000,
    }


#: How soon a transactional producer retries a request the coordinator refused. A transaction begun while
#: the previous one's markers are still being written is refused (CONCURRENT_TRANSACTIONS on
#: AddPartitionsToTxn / AddOffsetsToTxn) and librdkafka retries after `retry.backoff.ms`, 100 ms by
#: default: with commits back to back, 39 of 120 `send_offsets_to_transaction` calls took ~100 ms more
#: (p50 2-97 ms, p90 123 ms; 7 / 14 ms at 5 ms). Backoff still doubles per retry, up to the max, so an
#: unavailable broker is not hammered.
TXN_RETRY_BACKOFF = {"retry.backoff.ms": 5, "retry.backoff.max.ms": 1000}


def transactional_config(settings: Settings, *, transactional_id: str, client_id: str,
                         role: Role) -> dict[str, Any]:
    """An exactly-once stage's producer: idempotent, transactional, retrying refused transaction requests
    at once rather than after 100 ms."""
    return producer_config(settings, client_id=client_id, role=role) | TXN_RETRY_BACKOFF | {
        "transactional.id": transactional_id}


def consumer_config(settings: Settings, *, group_id: str, role: Role) -> dict[str, Any]:
    """Manual commits and read_committed: a consumer only sees what transactional producers committed."""
    return base_config(settings, group_id, role=role) | {
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "fetch.min.bytes": 1,
        "fetch.wait.max.ms": FETCH_WAIT_MS,
    }


def reply_consumer_config(settings: Settings, *, client_id: str, role: Role) -> dict[str, Any]:
    """A reader of `responses` or of reply partitions (assigned, no group, never commits).

    read_committed: it sees an answer only once the transaction holding it has committed; each
    request's answer is committed exactly once, so it never sees two answers for one request id and what
    it reads is what the telemetry, the aggregates and the lakehouse count. It waits for the gateway's
    commit: every 250 ms by default while callers read before the commit (`caller_reply_config`), as soon
    as the previous commit ended when they read committed (`dispatch.commit_interval_ms`). A fetch
    returns as soon as anything is readable (`fetch.min.bytes` 1, FETCH_WAIT_MS). Callers waiting for
    their own answers use `caller_reply_config`."""
    return base_config(settings, client_id, role=role) | {
        # required by librdkafka; unused (partitions are assigned, nothing committed), but the broker still
        # checks the group ACL: under the prefix, where `role`'s group ACLs allow it
        "group.id": group_name(settings, client_id),
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        "fetch.min.bytes": 1,
        "fetch.wait.max.ms": FETCH_WAIT_MS,
    }


def caller_reply_config(settings: Settings, *, client_id: str, role: Role) -> dict[str, Any]:
    """How a caller reads its own answers on `replies`: before their transaction commits when
    `client.answer_before_commit` (the default; streamgate/client/replies.py says what a caller then
    gets if the gateway dies in between), else as `reply_consumer_config`."""
    isolation = "read_uncommitted" if settings.client.answer_before_commit else "read_committed"
    return reply_consumer_config(settings, client_id=client_id, role=role) | {"isolation.level": isolation}


def routed_consumer_config(settings: Settings, *, group_id: str, role: Role) -> dict[str, Any]:
    """How the dispatcher reads the request path's outcomes (requests.routed, requests.rejected):
    read_committed, or read_uncommitted with `dispatch.read_routed_uncommitted` (the dispatcher answers
    each request id once, so a decision replayed after an aborted transaction is not answered again)."""
    isolation = "read_uncommitted" if settings.dispatch.read_routed_uncommitted else "read_committed"
    return consumer_config(settings, group_id=group_id, role=role) | {"isolation.level": isolation}


def admin_config(settings: Settings, *, role: Role = "admin",
                 client_id: str = "streamgate-admin") -> dict[str, Any]:
    return base_config(settings, client_id, role=role)


def admin_client(settings: Settings, *, role: Role = "admin",
                 client_id: str = "streamgate-admin") -> Any:
    """An AdminClient as `role` (the super user by default: topics, ACLs and SCRAM users)."""
    from confluent_kafka.admin import AdminClient

    return AdminClient(admin_config(settings, role=role, client_id=client_id))


def group_name(settings: Settings, name: str) -> str:
    """A consumer group or transactional id under the deployment's prefix, where its principal's
    prefixed ACLs (schemas/principals.yaml) allow it."""
    return settings.kafka.topic_prefix + name
