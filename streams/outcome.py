"""What a request-path stage decides about one request: pass it on, or reject it with a reason."""

from __future__ import annotations

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


def prompt_chars(event: dict[str, object]) -> int:
    messages = event.get("messages") or []
    assert isinstance(messages, list)
    return sum(len(m.get("content") or "") for m in messages if isinstance(m, dict))


def estimate_tokens(chars: int) -> int:
    """~4 characters per token for English text: a cheap bound, refined by provider usage later."""
    return (chars + 3) // 4
