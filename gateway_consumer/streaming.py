"""Streaming an answer to the caller who waits for it, piece by piece, while it is being dispatched.

`answer()` only sees a `ChunkSink`: the dispatcher's Kafka side (`dispatch/replies.py`) turns each piece
into a ResponseChunk on `replies.chunks`. What may be streamed as it arrives is decided here:

- pieces flow as the provider sends them only when the team's output guardrails cannot change the text:
  every PII entity type `allow` for the team, and no JSON format to validate. Otherwise the answer is
  checked first and the checked text goes out as ONE chunk (a redacted or blocked answer must never
  have been streamed raw, and a JSON answer may be retried once);
- a cache hit is one chunk;
- once a piece was sent, the request is never retried or sent to another target (the caller has seen
  text from this one): a failure then ends it with reason `stream_interrupted`.
"""

from __future__ import annotations

from typing import Any, Protocol

from gateway_consumer.providers.base import TEXT, requested_format
from shared.guardrails.pii import ENTITY_TYPES
from shared.policy.config import GatewayPolicy


class ChunkSink(Protocol):
    """Where the pieces of one dispatch of one streamed request go."""

    @property
    def sent(self) -> int:
        """Pieces sent so far."""
        ...

    def send(self, text: str, tool_calls: list[dict[str, Any]] | None, target: dict[str, Any]) -> None:
        """One piece: text and/or tool-call deltas (OpenAI stream format), from `target`."""
        ...


def output_may_change(routed: dict[str, Any], policy: GatewayPolicy) -> bool:
    """Whether the output guardrails could change or refuse the answer (then it is streamed as one
    checked chunk instead of as it arrives)."""
    team = routed["team"]
    if any(policy.pii_action(team, entity) != "allow" for entity in ENTITY_TYPES):
        return True
    try:
        return requested_format(routed["params"]) != TEXT
    except ValueError:
        return True


def as_deltas(tool_calls: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Complete tool calls as one stream delta each (OpenAI's delta shape carries an index)."""
    return [{"index": i} | c for i, c in enumerate(tool_calls)] if tool_calls else None
