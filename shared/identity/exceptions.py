"""Why a caller was refused, as typed errors each carrying the request path's reason code.

The front door maps them to HTTP: :class:`Unauthenticated`, :class:`KeyRevoked`, :class:`KeyExpired`
and :class:`KeyDisabled` to 401 with one generic body (never saying whether a key exists: the distinct
codes are for logs, audit and the request path's dead letters), :class:`IdentityMismatch` and
:class:`ModelNotAllowed` to 403.
"""

from __future__ import annotations


class IdentityError(Exception):
    """Base of every refusal; `reason_code` is what dead letters, responses and audit events carry."""

    reason_code = "unauthenticated"
    #: 401 (who are you?) or 403 (you may not); for the front door.
    http_status = 401
    #: refusals worth an audit event (a known key misused); unknown keys are not audited (noise, and
    #: an attacker could fill the audit log)
    audit = False

    def __init__(self, message: str, key_id: str | None = None) -> None:
        super().__init__(message)
        #: the public id of the key concerned, when the key is known (never the key or its hash)
        self.key_id = key_id


class Unauthenticated(IdentityError):  # noqa: N818 - named for the refusal, as callers match on it
    """No key, a malformed key, or a key the ring does not know."""

    reason_code = "unauthenticated"


class KeyRevoked(IdentityError):  # noqa: N818 - named for the refusal, as callers match on it
    """A revoked key, or a rotated key whose grace period has ended."""

    reason_code = "key_revoked"
    audit = True


class KeyExpired(IdentityError):  # noqa: N818 - named for the refusal, as callers match on it
    """A key past its `expires_at`."""

    reason_code = "key_expired"


class KeyDisabled(IdentityError):  # noqa: N818 - named for the refusal, as callers match on it
    """A key an operator disabled (kept, but refused)."""

    reason_code = "key_disabled"
    audit = True


class IdentityMismatch(IdentityError):  # noqa: N818 - named for the refusal, as callers match on it
    """A valid key used for a request that names another team or project."""

    reason_code = "identity_mismatch"
    http_status = 403
    audit = True


class ModelNotAllowed(IdentityError):  # noqa: N818 - named for the refusal, as callers match on it
    """A valid key asking for a model outside its `models` globs."""

    reason_code = "access_denied"
    http_status = 403
    audit = True
