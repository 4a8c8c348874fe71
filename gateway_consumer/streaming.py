"""Streaming an answer to the caller who waits for it, piece by piece, while it is being dispatched.

`answer()` only sees a `ChunkSink`: the dispatcher's Kafka side (`dispatch/replies.py`) turns each piece
into a ResponseChunk on `replies.chunks`. What may be streamed as it arrives is decided here:

- pieces flow as the provider sends them when the team's output guardrails cannot change the text
  (every PII entity type `allow`, no JSON format to validate);
- when only PII redaction could change it (the shipped policy redacts by default), pieces still flow,
  through a :class:`StreamingRedactor`: it holds back the last `HOLD` characters, and any entity that
  reaches into them, so nothing is sent before it can be redacted exactly as the final check redacts it;
  an entity the team blocks stops the pieces (the final check then fails the request);
- when the team's policy acts on names, places or organisations (the NER detector), or with a JSON
  format to validate, the answer is checked first and the checked text goes out as ONE chunk
  (a JSON answer may be retried once, and a caller must not see the first attempt);
- a cache hit is one chunk;
- once a piece was sent, the request is never retried or sent to another target (the caller has seen
  text from this one): a failure then ends it with reason `stream_interrupted`.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from gateway_consumer.providers.base import TEXT, requested_format
from shared.guardrails.pii import ENTITY_TYPES, find_pii, ner_types
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


#: How streamed text reaches the caller: as it arrives, through the redactor, or once, checked.
StreamMode = Literal["raw", "redact", "buffer"]
#: Characters held back at the end of the streamed text: longer than any entity the PII scanner finds
#: (an e-mail address, a card or IBAN with spaces, an API key).
HOLD = 160


def stream_mode(routed: dict[str, Any], policy: GatewayPolicy) -> StreamMode:
    try:
        if requested_format(routed["params"]) != TEXT:
            return "buffer"
    except ValueError:
        return "buffer"
    team = routed["team"]
    if ner_types(policy, team):
        return "buffer"  # NER over the growing text at every piece would cost ms per KB per piece
    if any(policy.pii_action(team, entity) != "allow" for entity in ENTITY_TYPES):
        return "redact"
    return "raw"


def output_may_change(routed: dict[str, Any], policy: GatewayPolicy) -> bool:
    """Whether the output guardrails could change or refuse the answer."""
    return stream_mode(routed, policy) != "raw"


class StreamingRedactor:
    """Streamed text, redacted as the final output check will redact the whole answer.

    Each piece is appended to the raw text, the raw text is scanned whole (answers are a few KB; the
    scanner takes ~16 us per KB), and what lies before the held-back tail and before any entity that
    reaches into it is released, with the entities in it replaced by the same placeholders the whole
    answer gets (they are numbered in order of appearance, so a prefix numbers them alike)."""

    def __init__(self, policy: GatewayPolicy, team: str) -> None:
        self.policy, self.team = policy, team
        self.raw = ""
        self.released = 0  # raw characters already released
        self.sent = ""  # the redacted text released so far
        self.blocked = False

    def feed(self, text: str) -> str:
        """The redacted text that may be sent now ("" if nothing yet)."""
        self.raw += text
        if self.blocked:
            return ""
        cut = len(self.raw) - HOLD
        findings = find_pii(self.raw, tuple(self.policy.guardrails.phone_regions))
        for _, start, end in findings:
            if start < cut < end:  # an entity reaching into the tail is held back whole
                cut = start
        if cut <= self.released:
            return ""
        if any(self.policy.pii_action(self.team, kind) == "block" for kind, _, end in findings if end <= cut):
            self.blocked = True  # never sent; the final check fails the request
            return ""
        redacted = self._redacted(cut, findings)
        piece = redacted[len(self.sent):]
        self.released, self.sent = cut, redacted
        return piece

    def _redacted(self, cut: int, findings: list[tuple[str, int, int]]) -> str:
        labels: dict[tuple[str, str], str] = {}
        counters: dict[str, int] = {}
        pieces, last = [], 0
        for kind, start, end in findings:
            if end > cut:
                break
            if self.policy.pii_action(self.team, kind) == "allow":
                continue
            value = self.raw[start:end]
            if (label := labels.get((kind, value))) is None:
                counters[kind] = counters.get(kind, 0) + 1
                label = labels[(kind, value)] = f"<{kind}_{counters[kind]}>"
            pieces += [self.raw[last:start], label]
            last = end
        return "".join(pieces) + self.raw[last:cut]

    def rest(self, checked: str) -> str:
        """What the caller has not seen of the checked whole answer (its text after what was sent)."""
        return checked[len(self.sent):] if checked.startswith(self.sent) else ""


def as_deltas(tool_calls: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Complete tool calls as one stream delta each (OpenAI's delta shape carries an index)."""
    return [{"index": i} | c for i, c in enumerate(tool_calls)] if tool_calls else None
