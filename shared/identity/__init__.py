"""API keys: issue, store (keyed hash only), follow live, and authenticate callers (issue 17).

Import from here: :class:`KeyRing` (authenticate), :class:`KeyIdentity` (who the caller is), the
errors in :mod:`shared.identity.exceptions`, and :mod:`shared.identity.admin` (create/revoke/rotate).
"""

from shared.identity.exceptions import (
    IdentityError,
    IdentityMismatch,
    KeyDisabled,
    KeyExpired,
    KeyRevoked,
    ModelNotAllowed,
    Unauthenticated,
)
from shared.identity.keys import KEY_PREFIX, KeyRecord, generate_key, key_hmac
from shared.identity.ring import KeyIdentity, KeyRing

__all__ = [
    "KEY_PREFIX",
    "IdentityError",
    "IdentityMismatch",
    "KeyDisabled",
    "KeyExpired",
    "KeyIdentity",
    "KeyRecord",
    "KeyRevoked",
    "KeyRing",
    "ModelNotAllowed",
    "Unauthenticated",
    "generate_key",
    "key_hmac",
]
