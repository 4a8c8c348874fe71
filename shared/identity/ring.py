"""The key ring: every key's state in memory, kept current by following the compacted keys topic.

Authenticating a request is a hash and a dict lookup, never a Kafka call: the request path and the front
door each hold one ring, and a :class:`KeyFollower` thread applies every change written by
`streamgate keys` (shared/identity/admin.py) within a fraction of a second, so a revoked key stops
working everywhere within the follower's poll interval (tested under 5 s through the real broker).

Every process must see every key, so the follower reads all partitions from the beginning without a
consumer group (like the policy follower, shared/policy/holder.py).
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, TopicPartition

from schemas import EventDecodeError, make_codec
from schemas.topics import Topic, physical_name
from shared.identity.exceptions import (
    IdentityMismatch,
    KeyDisabled,
    KeyExpired,
    KeyRevoked,
    ModelNotAllowed,
    Unauthenticated,
)
from shared.identity.keys import KeyRecord, key_hmac
from streamgate.client.request import API_KEY_HASH_PREFIX, hash_api_key
from streamgate.config import Role, Settings, key_hmac_secret
from streamgate.kafka.clients import consumer_config, group_name

log = logging.getLogger(__name__)
_HMAC_CACHE = 100_000
_HASH_LEN = len(API_KEY_HASH_PREFIX) + 64


@dataclass(frozen=True, slots=True)
class KeyIdentity:
    """Who an authenticated caller is, and what its key allows. `key_id` is the public id, the only
    name of the caller that stages after authentication (events, aggregates, tables) carry."""

    key_id: str
    team: str
    project: str
    models: tuple[str, ...] = ("*",)
    #: spend cap per calendar month, USD (None: none)
    max_budget_usd: float | None = None
    #: requests per minute (None: none)
    rpm: int | None = None
    expires_at: int | None = None
    grace_until: int | None = None
    _allowed: dict[str, bool] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def budget_scope(self) -> str:
        """The usage scope of this key (`team/key_id`), as budgets and aggregates name it."""
        return f"{self.team}/{self.key_id}"

    def allows_model(self, model: str) -> bool:
        """Whether the key's `models` globs admit `model` (a requested model name or alias)."""
        allowed = self._allowed.get(model)
        if allowed is None:  # model names are a bounded set (validated against routes and the catalog)
            allowed = self._allowed[model] = any(fnmatch.fnmatchcase(model, p) for p in self.models)
        return allowed

    def check_model(self, model: str) -> None:
        """Raise :class:`ModelNotAllowed` unless the key may request `model`."""
        if not self.allows_model(model):
            raise ModelNotAllowed(f"API key {self.key_id} may not use {model!r}", self.key_id)

    def check_owner(self, team: str | None, project: str | None) -> None:
        """Raise :class:`IdentityMismatch` when a request names a team or project other than the key's
        (None: the request names none, and gets the key's)."""
        if team is not None and team != self.team:
            raise IdentityMismatch(f"API key {self.key_id} belongs to team {self.team}, not {team}",
                                   self.key_id)
        if project is not None and project != self.project:
            raise IdentityMismatch(
                f"API key {self.key_id} belongs to project {self.team}/{self.project}, not {project}",
                self.key_id)

    @classmethod
    def of(cls, record: KeyRecord) -> KeyIdentity:
        return cls(record.id, record.team, record.project, record.models, record.max_budget_usd,
                   record.rpm, record.expires_at, record.grace_until)


def _now_ms() -> int:
    return int(time.time() * 1000)


class KeyRing:
    """Every key's state by keyed hash and by id. Thread-safe for one writer (the follower) and any
    number of readers: entries are replaced whole, never mutated."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._by_hmac: dict[str, tuple[KeyRecord, KeyIdentity]] = {}
        self._by_id: dict[str, KeyRecord] = {}
        #: api_key_id -> its HMAC: the same callers come back, and a dict lookup is ~100x cheaper than an
        #: HMAC. Bounded (cleared when full), since anyone can send made-up ids.
        self._hmacs: dict[str, str] = {}
        #: changes applied so far (a test or a health check can wait on it)
        self.updates = 0

    @classmethod
    def for_settings(cls, settings: Settings) -> KeyRing:
        """An empty ring with the deployment's HMAC secret (streamgate.config.key_hmac_secret)."""
        return cls(key_hmac_secret(settings))

    # -- authentication (the hot path) ------------------------------------------------------------
    def authenticate_hash(self, api_key_id: str, now_ms: int | None = None) -> KeyIdentity:
        """The caller behind a client-side key hash (`sha256:<hex>`, the `api_key_id` of a Request).

        Raises :class:`Unauthenticated` (malformed or unknown), :class:`KeyRevoked` (revoked, or rotated
        and past its grace period), :class:`KeyDisabled`, :class:`KeyExpired`. Messages name the public
        key id at most, never the key or its hash.
        """
        if len(api_key_id) != _HASH_LEN or not api_key_id.startswith(API_KEY_HASH_PREFIX):
            raise Unauthenticated("the API key id is not a sha256: hash of a key")
        mac = self._hmacs.get(api_key_id)
        if mac is None:
            if len(self._hmacs) >= _HMAC_CACHE:
                self._hmacs = {}
            mac = self._hmacs[api_key_id] = key_hmac(self._secret, api_key_id)
        entry = self._by_hmac.get(mac)
        if entry is None:
            raise Unauthenticated("unknown API key")
        record, identity = entry
        now = _now_ms() if now_ms is None else now_ms
        if record.status == "revoked":
            raise KeyRevoked(f"API key {record.id} was revoked", record.id)
        if record.status == "disabled":
            raise KeyDisabled(f"API key {record.id} is disabled", record.id)
        if record.expires_at is not None and now >= record.expires_at:
            raise KeyExpired(f"API key {record.id} expired", record.id)
        if record.grace_until is not None and now >= record.grace_until:
            raise KeyRevoked(f"API key {record.id} was rotated and its grace period has ended", record.id)
        return identity

    def authenticate_raw(self, raw_key: str, now_ms: int | None = None) -> KeyIdentity:
        """The caller behind a raw key (`sg-...`, e.g. from an HTTP Authorization header); as
        :meth:`authenticate_hash`, which it calls with the key's client-side hash."""
        if not raw_key:
            raise Unauthenticated("no API key")
        return self.authenticate_hash(hash_api_key(raw_key), now_ms)

    def stored_hmac(self, raw_key: str) -> str:
        """What the keys topic stores for `raw_key` (used when a key is created)."""
        return key_hmac(self._secret, hash_api_key(raw_key))

    # -- state ------------------------------------------------------------------------------------
    def apply(self, record: KeyRecord) -> None:
        """Adopt a key's latest state (from the keys topic, or directly in unit tests)."""
        old = self._by_id.get(record.id)
        if old is not None and old.hmac != record.hmac:
            self._by_hmac.pop(old.hmac, None)
        self._by_hmac[record.hmac] = (record, KeyIdentity.of(record))
        self._by_id[record.id] = record
        self.updates += 1

    def forget(self, key_id: str) -> None:
        """A tombstone on the keys topic: the key is gone (unknown from now on)."""
        record = self._by_id.pop(key_id, None)
        if record is not None:
            self._by_hmac.pop(record.hmac, None)
            self.updates += 1

    def get(self, key_id: str) -> KeyRecord | None:
        """A key's record by public id (for `keys list`, budgets and the front door's admin views)."""
        return self._by_id.get(key_id)

    def records(self) -> list[KeyRecord]:
        """Every key known, oldest first."""
        return sorted(self._by_id.values(), key=lambda r: (r.created_at, r.id))

    def __len__(self) -> int:
        return len(self._by_id)

    def follow(self, settings: Settings, *, role: Role, wait: bool = True) -> KeyFollower:
        """Start a :class:`KeyFollower` filling this ring; with `wait`, return once the topic has been
        read to its end (raises TimeoutError after `identity.ready_timeout_s`). Stop it with `.stop()`.
        `role`: the component following it (its principal needs read on the keys topic)."""
        follower = KeyFollower(settings, self, role=role)
        follower.start()
        deadline = time.monotonic() + settings.identity.ready_timeout_s
        while wait and not follower.ready.wait(0.1):
            if follower.error is not None:  # the topic is missing, the broker refused: say so now
                raise RuntimeError(f"cannot follow the keys topic: {follower.error}") from follower.error
            if time.monotonic() > deadline:
                follower.stop()
                raise TimeoutError(f"the keys topic {follower.topic} was not read within "
                                   f"{settings.identity.ready_timeout_s} s")
        return follower


class KeyFollower(threading.Thread):
    """Tails the keys topic into a :class:`KeyRing`; `ready` is set once the topic's records at start
    have all been applied."""

    def __init__(self, settings: Settings, ring: KeyRing, poll_s: float = 0.2, *, role: Role) -> None:
        super().__init__(name="key-follower", daemon=True)
        self.ring, self.poll_s = ring, poll_s
        self.topic = physical_name(Topic.KEYS, settings.kafka.topic_prefix)
        self.codec = make_codec(self.topic, "ApiKey", settings.schema_registry.url)
        # assigned, never committed: the group only names the reader (under the role's `replay-` ACL)
        group = group_name(settings, "replay-keys")
        self.consumer = Consumer(consumer_config(settings, group_id=group, role=role)
                                 | {"client.id": "streamgate-key-follower"})
        self.ready = threading.Event()
        self.stopping = threading.Event()
        #: why the follower stopped early (the topic is missing, the broker unreachable)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # surfaced to whoever waits on `ready` via `error`
            self.error = exc
            log.exception("the key follower stopped")
        finally:
            self.consumer.close()

    def _run(self) -> None:
        meta = self.consumer.list_topics(self.topic, timeout=10).topics[self.topic]
        if meta.error is not None:
            raise RuntimeError(f"keys topic {self.topic}: {meta.error} (run `streamgate topics apply`)")
        parts = [TopicPartition(self.topic, p, 0) for p in meta.partitions]
        ends = {p.partition: self._end(p) for p in parts}
        self.consumer.assign(parts)
        caught_up = {p for p, end in ends.items() if end <= 0}
        if len(caught_up) == len(ends):
            self.ready.set()
        while not self.stopping.is_set():
            for msg in self.consumer.consume(500, timeout=self.poll_s):
                if msg.error() is not None:
                    continue
                self._apply(msg.key(), msg.value())
                if not self.ready.is_set() and (msg.offset() or 0) + 1 >= ends[msg.partition() or 0]:
                    caught_up.add(msg.partition() or 0)
                    if len(caught_up) == len(ends):
                        log.info("key ring loaded: %d keys", len(self.ring))
                        self.ready.set()

    def _end(self, tp: TopicPartition, attempts: int = 20) -> int:
        """The partition's end offset, retried while a just-created topic is still electing its leader."""
        for attempt in range(attempts):
            try:
                return int(self.consumer.get_watermark_offsets(tp, timeout=10)[1])
            except KafkaException:
                if attempt == attempts - 1 or self.stopping.is_set():
                    raise
                time.sleep(0.25)
        raise AssertionError("unreachable")

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            if key:
                self.ring.forget(key.decode())
            return
        try:
            self.ring.apply(KeyRecord.from_event(self.codec.decode(value)))
        except (EventDecodeError, ValueError, KeyError) as exc:  # one bad record must not stop the ring
            log.error("key record rejected: %s", exc)

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(5)
