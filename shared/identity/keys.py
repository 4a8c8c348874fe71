"""The key format, the keyed hash that is all streamgate stores of a key, and the key's record.

A key is `sg-` + 43 base62 characters (32 random bytes): recognisable in a leaked log or a secret
scanner, and long enough that guessing is hopeless. It has a separate public id (`key_` + 16 hex) that is
safe to print, log and store, and is how every stage after authentication names the caller.

What is stored is HMAC-SHA256(server secret, api_key_id), where api_key_id is the `sha256:<hex>` a
service's client computes (streamgate/client/request.py): the client cannot know the server secret, so
the wire format stays, and a table or topic dump without the secret cannot be used to test guesses.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from streamgate.client.request import hash_api_key

KEY_PREFIX = "sg-"
KEY_ID_PREFIX = "key_"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_KEY_BYTES = 32
_KEY_CHARS = 43  # ceil(256 / log2(62))
KEY_PATTERN = re.compile(rf"^{KEY_PREFIX}[0-9A-Za-z]{{{_KEY_CHARS}}}$")
KEY_ID_PATTERN = re.compile(rf"^{KEY_ID_PREFIX}[0-9a-f]{{16}}$")
Status = Literal["active", "revoked", "disabled"]
STATUSES: tuple[Status, ...] = ("active", "revoked", "disabled")


def _base62(data: bytes, width: int) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(_BASE62[r])
    return "".join(reversed(out)).rjust(width, "0")


def generate_key() -> tuple[str, str]:
    """(public id, raw key). The raw key is shown once to its owner and never stored."""
    raw = KEY_PREFIX + _base62(secrets.token_bytes(_KEY_BYTES), _KEY_CHARS)
    return KEY_ID_PREFIX + secrets.token_hex(8), raw


def key_hmac(secret: bytes, api_key_id: str) -> str:
    """Hex HMAC-SHA256 of a client-side key hash (`sha256:<hex>`) under the server secret."""
    return hmac.digest(secret, api_key_id.encode(), "sha256").hex()


def raw_key_hmac(secret: bytes, raw_key: str) -> str:
    """The stored form of a raw key: the HMAC of what its client would send."""
    return key_hmac(secret, hash_api_key(raw_key))


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One key's state, as on the compacted keys topic (schemas/avro/api_key.avsc)."""

    id: str
    hmac: str
    team: str
    project: str
    status: Status
    created_at: int
    created_by: str
    updated_at: int
    models: tuple[str, ...] = ("*",)
    max_budget_usd: float | None = None
    rpm: int | None = None
    expires_at: int | None = None
    rotated_from: str | None = None
    grace_until: int | None = None

    def to_event(self) -> dict[str, Any]:
        event = asdict(self)
        event["models"] = list(self.models)
        return event

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> KeyRecord:
        if event["status"] not in STATUSES:
            raise ValueError(f"key {event['id']} has unknown status {event['status']!r}")
        return cls(id=event["id"], hmac=event["hmac"], team=event["team"], project=event["project"],
                   status=event["status"], created_at=int(event["created_at"]),
                   created_by=event["created_by"], updated_at=int(event["updated_at"]),
                   models=tuple(event.get("models") or ("*",)), max_budget_usd=event.get("max_budget_usd"),
                   rpm=event.get("rpm"), expires_at=event.get("expires_at"),
                   rotated_from=event.get("rotated_from"), grace_until=event.get("grace_until"))

    def evolve(self, **changes: Any) -> KeyRecord:
        return replace(self, **changes)


_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration_ms(text: str) -> int:
    """`30d`, `12h`, `15m`, `90s` in milliseconds."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not match:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 1h or 30d")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]
