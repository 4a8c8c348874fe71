"""A caller's deadline (`deadline_at` on Request and RoutedRequest): past it, nobody waits for the answer.

Checked wherever skipping work is cheapest: by the request path right after authentication and
validation, before guardrails and routing (streams/pipeline.py), and by the dispatcher before the cache,
each attempt and each provider slot (gateway_consumer/answer.py). Either way the caller's answer is
`failed` with this reason code (HTTP 504 at the front door) and no provider is called.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

DEADLINE_EXCEEDED = "deadline_exceeded"


def past_deadline_ms(event: Mapping[str, Any], now_ms: int | None = None) -> int | None:
    """How long ago the caller's deadline passed (ms), or None: not yet, or no deadline."""
    deadline = event.get("deadline_at")
    if deadline is None:
        return None
    late = (int(time.time() * 1000) if now_ms is None else now_ms) - deadline
    return late if late >= 0 else None
