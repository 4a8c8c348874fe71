"""What a request-path stage decides about one request: pass it on, or reject it with a reason."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rejection:
    """A request that stops here: a dead letter, a `rejected` response and (for denials) an audit event."""

    stage: str
    reason_code: str
    message: str
    #: Denials (access, residency, policy, budget) are audit-worthy; malformed input is not.
    audit: bool = False
    #: False for duplicates: the original already has (or will have) the one response for its id.
    respond: bool = True
    #: The response's status: `failed` for a request nobody waits for any more (a caller's deadline),
    #: which is not a refusal.
    status: str = "rejected"
    #: False where the record is not bad and holds nothing to look at again (an expired request: its
    #: caller has gone; its request and answer are in their topics). Every refusal is dead-lettered.
    dead_letter: bool = True


def prompt_chars(event: dict[str, object]) -> int:
    messages = event.get("messages") or []
    assert isinstance(messages, list)
    return sum(len(m.get("content") or "") for m in messages if isinstance(m, dict))


def estimate_tokens(chars: int) -> int:
    """~4 characters per token for English text: a cheap bound, refined by provider usage later."""
    return (chars + 3) // 4


_ids = random.Random()  # seeded from os.urandom once per process


_V4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))  # the variant and version bits
_V4_SET = (0x8000 << 48) | (4 << 76)  # RFC 4122 variant, version 4


def event_id() -> str:
    """A random (version 4) UUID for an event record. Not for secrets: it skips uuid4's per-call
    os.urandom system call and the UUID object, which showed in the workers' profiles (2-3%)."""
    h = "%032x" % (_ids.getrandbits(128) & _V4_CLEAR | _V4_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
