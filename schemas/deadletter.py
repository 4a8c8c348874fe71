"""Dead-letter records: the original bytes, where they came from, which stage refused them and why."""

from __future__ import annotations

import time
import uuid
from typing import Any

from schemas.errors import EventDecodeError


def dead_letter(source_topic: str, partition: int, offset: int, stage: str, reason_code: str, message: str,
                raw_value: bytes, raw_key: bytes | None = None, request_id: str | None = None,
                now_ms: int | None = None) -> dict[str, Any]:
    """A `DeadLetter` record for any rejection (decode failure or a semantic rule)."""
    return {
        "event_id": str(uuid.uuid4()),
        "source_topic": source_topic,
        "partition": partition,
        "offset": offset,
        "stage": stage,
        "reason_code": reason_code,
        "message": message,
        "original_key": raw_key,
        "original_value": raw_value,
        "request_id": request_id,
        "failed_at": now_ms if now_ms is not None else int(time.time() * 1000),
    }


def dead_letter_from_error(err: EventDecodeError, *, raw_value: bytes, raw_key: bytes | None, stage: str,
                           now_ms: int | None = None) -> dict[str, Any]:
    """A `DeadLetter` record for bytes that did not decode; the error already knows where they were."""
    return dead_letter(err.topic, err.partition, err.offset, stage, err.reason_code, err.detail,
                       raw_value, raw_key, now_ms=now_ms)
