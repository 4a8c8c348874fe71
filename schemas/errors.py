"""Typed errors for events that cannot be encoded or decoded.

A decode error always names where the bytes came from (topic, partition, offset), because the first
thing anyone does with a bad record is go and look at it; `reason_code` is what a dead letter carries.
"""

from __future__ import annotations

from typing import TypedDict


class Place(TypedDict):
    """Where a record was read: what every decode error names."""

    topic: str
    partition: int
    offset: int


class EventDecodeError(Exception):
    """Bytes on a topic that do not decode to the event type the topic carries."""

    reason_code = "undecodable"

    def __init__(self, detail: str, *, topic: str, partition: int = -1, offset: int = -1) -> None:
        self.detail = detail
        self.topic = topic
        self.partition = partition
        self.offset = offset
        super().__init__(f"{topic}[{partition}]@{offset}: {self.reason_code}: {detail}")


class MalformedEventError(EventDecodeError):
    """Garbage, truncated or trailing bytes, or a wrong magic byte."""

    reason_code = "malformed"


class UnknownSchemaError(EventDecodeError):
    """A well-framed event whose schema fingerprint or registry id nobody knows."""

    reason_code = "unknown_schema"


class WrongSchemaError(EventDecodeError):
    """A valid event of another type than the topic carries."""

    reason_code = "wrong_schema"


class EventEncodeError(ValueError):
    """A record that does not match its schema; nothing was sent."""

    reason_code = "invalid_event"

    def __init__(self, event_type: str, detail: str) -> None:
        self.event_type = event_type
        self.detail = detail
        super().__init__(f"invalid {event_type} event: {detail}")
