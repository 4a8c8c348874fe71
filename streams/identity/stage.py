"""Authentication, the request path's first decision: the key, not the request's fields, says who calls.

A request carries `api_key_id`, the client-side `sha256:` hash of its key. The stage looks it up in the
worker's :class:`~shared.identity.KeyRing` (a dict lookup; the ring follows the keys topic in the
background), refuses unknown, revoked, expired and disabled keys, refuses a request naming a team or
project other than its key's (`identity_mismatch`, audited), and replaces `api_key_id` with the key's
public id: from here on (guarded, routed, responses, telemetry, usage, tables) the caller is named by an id
that is not a credential.
"""

from __future__ import annotations

from typing import Any

from shared.guardrails.outcome import Rejection
from shared.identity import IdentityError, KeyIdentity, KeyRing

STAGE = "authenticate"
#: what a rejected request's response and audit event name as the caller when no key was recognised
ANONYMOUS = "anonymous"


def authenticate(event: dict[str, Any], ring: KeyRing,
                 now_ms: int) -> tuple[KeyIdentity | Rejection, dict[str, Any]]:
    """(the caller or the rejection, the event naming the caller by key id).

    A refused request is named by its key's id when the key is known (a revoked key, another team's
    key: the audit event says whose key it was), and as `anonymous` when not: the client-side hash of
    an unknown key is carried into no topic downstream (dead letters keep the original bytes)."""
    try:
        identity = ring.authenticate_hash(str(event.get("api_key_id") or ""), now_ms)
        identity.check_owner(event.get("team"), event.get("project"))
    except IdentityError as err:
        named = {**event, "api_key_id": err.key_id or ANONYMOUS}
        return Rejection(STAGE, err.reason_code, str(err), audit=err.audit), named
    return identity, {**event, "api_key_id": identity.key_id}
