"""From a final Response that is not a completion to the HTTP error a caller's SDK expects.

The request path and the dispatcher speak reason codes; callers speak HTTP statuses. One table here, so
both wire formats (and their tests) agree.
"""

from __future__ import annotations

import calendar
import time
from datetime import UTC, datetime
from typing import Any

from frontdoor.exceptions import ApiError, Kind

_INVALID = ("missing_field", "invalid_api_key_id", "invalid_max_tokens", "invalid_temperature",
            "invalid_top_p", "no_messages", "too_many_messages", "prompt_too_long", "duplicate",
            "malformed", "invalid_json_input", "invalid_params", "invalid_reply_partition",
            "prompt_too_large", "invalid_deadline")
_STATUS: dict[str, tuple[int, Kind]] = {
    **{code: (400, "invalid_request") for code in _INVALID},
    "unknown_model": (404, "not_found"),
    "unknown_team": (403, "permission"), "unknown_project": (403, "permission"),
    "unauthenticated": (401, "authentication"), "key_revoked": (401, "authentication"),
    "key_expired": (401, "authentication"), "key_disabled": (401, "authentication"),
    "identity_mismatch": (403, "permission"), "model_not_allowed": (403, "permission"),
    "access_denied": (403, "permission"),
    "capability_denied": (403, "permission"), "pii_blocked": (403, "permission"),
    "policy_denied": (403, "permission"), "blocked_topic": (403, "permission"),
    "no_target_in_region": (403, "permission"), "output_pii_blocked": (403, "permission"),
    "budget_exceeded": (429, "rate_limit"), "rate_limited": (429, "rate_limit"),
    "all_targets_failed": (502, "provider"), "invalid_json": (502, "provider"),
    "stream_interrupted": (502, "provider"),
    "deadline_exceeded": (504, "timeout"),
}
_AUTH = {"unauthenticated", "key_revoked", "key_expired", "key_disabled"}


def error_for(response: dict[str, Any], now: float | None = None) -> ApiError:
    """The ApiError for a `rejected` or `failed` Response."""
    code = response.get("reason_code") or ("rejected" if response["status"] == "rejected" else "failed")
    message = response.get("message") or code
    if code in _AUTH:  # the same answer whatever the reason: a key's state is nobody's business
        return ApiError(401, "authentication", "invalid or missing API key", code="invalid_api_key")
    status, kind = _STATUS.get(code, (403 if response["status"] == "rejected" else 502,
                                      "permission" if response["status"] == "rejected" else "provider"))
    if code == "all_targets_failed" and "timeout" in message:
        status, kind = 504, "timeout"
    retry = retry_after_s(message, now) if status == 429 else None
    return ApiError(status, kind, message, code=code, retry_after_s=retry)


def retry_after_s(message: str, now: float | None = None) -> int:
    """Seconds until the limit named in a budget rejection resets: the minute, the UTC day or month."""
    now = time.time() if now is None else now
    at = datetime.fromtimestamp(now, UTC)
    if "per minute" in message:
        return max(1, 60 - at.second)
    if "daily" in message:
        return max(1, 86_400 - (at.hour * 3600 + at.minute * 60 + at.second))
    if "monthly" in message:
        days = calendar.monthrange(at.year, at.month)[1]
        end = datetime(at.year, at.month, days, tzinfo=UTC).timestamp() + 86_400
        return max(1, int(end - now))
    return 1
