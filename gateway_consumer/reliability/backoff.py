"""Exponential backoff with full jitter, and Retry-After honoured when the provider sends one."""

from __future__ import annotations

import random

from streamgate.config import RetrySettings


def retry_delay_s(retry: int, settings: RetrySettings, retry_after_s: float | None = None,
                  rng: random.Random | None = None) -> float | None:
    """Seconds to wait before retry number `retry` (1-based); None: do not wait here, fall over.

    Full jitter (a uniform draw below the exponential cap) spreads retries of many clients apart. A
    provider's Retry-After wins, unless it asks for longer than we are willing to hold the request.
    """
    if retry_after_s is not None:
        return retry_after_s if retry_after_s <= settings.max_retry_after_s else None
    cap = min(settings.backoff_max_ms, settings.backoff_base_ms * 2 ** (retry - 1)) / 1000
    return (rng or random).uniform(cap / 2, cap)
