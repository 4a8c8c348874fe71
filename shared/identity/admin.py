"""Key lifecycle: create, revoke, rotate, list. Each change is one record on the compacted keys topic
(its new state) and one audit event; neither ever holds the key or its client-side hash.

The raw key exists only in the return value of :meth:`KeyAdmin.create` / :meth:`KeyAdmin.rotate`,
for the caller to show once.
"""

from __future__ import annotations

import getpass
import time
import uuid
from typing import Any

from confluent_kafka import Producer

from schemas import make_codec
from schemas.topics import Topic, physical_name
from shared.identity.keys import KeyRecord, generate_key
from shared.identity.ring import KeyRing
from streamgate.config import Settings
from streamgate.kafka.clients import producer_config


class UnknownKeyError(LookupError):
    """No key with that public id on the keys topic."""


def _now() -> int:
    return int(time.time() * 1000)


class KeyAdmin:
    """Writes key changes for one deployment. Reads the current state through a :class:`KeyRing`
    loaded from the topic (so revoke and rotate act on what every worker sees)."""

    def __init__(self, settings: Settings, *, actor: str | None = None) -> None:
        self.settings = settings
        self.actor = actor or getpass.getuser()
        prefix, registry = settings.kafka.topic_prefix, settings.schema_registry.url
        self.keys_topic = physical_name(Topic.KEYS, prefix)
        self.audit_topic = physical_name(Topic.AUDIT, prefix)
        self.key_codec = make_codec(self.keys_topic, "ApiKey", registry)
        self.audit_codec = make_codec(self.audit_topic, "AuditEvent", registry)
        self.ring = KeyRing.for_settings(settings)
        self._loaded = False
        self._producer: Producer | None = None

    def _load(self) -> KeyRing:
        if not self._loaded:
            self.ring.follow(self.settings, role="keys").stop()
            self._loaded = True
        return self.ring

    def list_keys(self) -> list[KeyRecord]:
        """Every key's current state (never the key)."""
        return self._load().records()

    def get(self, key_id: str) -> KeyRecord:
        record = self._load().get(key_id)
        if record is None:
            raise UnknownKeyError(f"no API key {key_id!r}")
        return record

    def create(self, team: str, project: str, *, models: list[str] | None = None,
               max_budget_usd: float | None = None, rpm: int | None = None,
               expires_in_ms: int | None = None, rotated_from: str | None = None) -> tuple[KeyRecord, str]:
        """A new active key: (its record, the raw key to show once)."""
        key_id, raw = generate_key()
        now = _now()
        record = KeyRecord(
            id=key_id, hmac=self.ring.stored_hmac(raw), team=team, project=project, status="active",
            created_at=now, created_by=self.actor, updated_at=now, models=tuple(models or ["*"]),
            max_budget_usd=max_budget_usd, rpm=rpm,
            expires_at=now + expires_in_ms if expires_in_ms is not None else None, rotated_from=rotated_from)
        details = {"project": project, "models": ",".join(record.models),
                   "max_budget_usd": str(max_budget_usd), "rpm": str(rpm),
                   "expires_at": str(record.expires_at)}
        if rotated_from:
            details["rotated_from"] = rotated_from
        self._write([record], [self._audit("key_create", record, "created", f"API key {key_id} created",
                                           details)])
        return record, raw

    def revoke(self, key_id: str) -> KeyRecord:
        """Revoke at once; every ring refuses the key as `key_revoked` within seconds."""
        record = self.get(key_id).evolve(status="revoked", updated_at=_now())
        self._write([record], [self._audit("key_revoke", record, "revoked", f"API key {key_id} revoked", {})])
        return record

    def set_status(self, key_id: str, status: str) -> KeyRecord:
        """Disable a key (kept, refused as `key_disabled`) or re-activate a disabled one."""
        if status not in ("active", "disabled"):
            raise ValueError("a key can be set active or disabled here; use revoke to revoke it")
        current = self.get(key_id)
        if current.status == "revoked":
            raise ValueError(f"API key {key_id} is revoked; revocation is final")
        record = current.evolve(status=status, updated_at=_now())
        audit = self._audit("key_status", record, status, f"API key {key_id} set {status}", {})
        self._write([record], [audit])
        return record

    def rotate(self, key_id: str, grace_ms: int) -> tuple[KeyRecord, KeyRecord, str]:
        """A new key with the old one's team, project and limits; the old key stays valid for
        `grace_ms` and is refused as `key_revoked` after. (old record, new record, new raw key)."""
        old = self.get(key_id)
        if old.status != "active":
            raise ValueError(f"API key {key_id} is {old.status}; only an active key can be rotated")
        now = _now()
        remaining = old.expires_at - now if old.expires_at is not None else None
        new, raw = self.create(old.team, old.project, models=list(old.models),
                               max_budget_usd=old.max_budget_usd, rpm=old.rpm, expires_in_ms=remaining,
                               rotated_from=old.id)
        until = now + grace_ms
        if old.grace_until is not None:
            until = min(until, old.grace_until)
        retired = old.evolve(grace_until=until, updated_at=now)
        self._write([retired], [self._audit("key_rotate", retired, "rotated",
                                            f"API key {key_id} rotated to {new.id}",
                                            {"rotated_to": new.id, "grace_until": str(until)})])
        return retired, new, raw

    def _audit(self, action: str, record: KeyRecord, decision: str, reason: str,
               details: dict[str, str]) -> dict[str, Any]:
        return {"event_id": str(uuid.uuid4()), "occurred_at": _now(), "actor": self.actor, "action": action,
                "resource": f"key:{record.id}", "decision": decision, "reason": reason, "request_id": None,
                "team": record.team, "config_version": None,
                "details": {"project": record.project, "status": record.status, **details}}

    def _write(self, records: list[KeyRecord], audits: list[dict[str, Any]]) -> None:
        if self._producer is None:
            config = producer_config(self.settings, client_id="streamgate-keys", role="keys")
            self._producer = Producer(config)
        for record in records:
            self._producer.produce(self.keys_topic, key=record.id.encode(),
                                   value=self.key_codec.encode(record.to_event()))
            self.ring.apply(record)
        for audit in audits:
            self._producer.produce(self.audit_topic, key=audit["resource"].encode(),
                                   value=self.audit_codec.encode(audit))
        if self._producer.flush(30):
            raise RuntimeError("the keys topic did not acknowledge the change")
