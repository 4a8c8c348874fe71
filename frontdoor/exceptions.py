"""The one error the front door answers with: an HTTP status, a machine-readable kind and a message.

Each wire format (OpenAI, Anthropic) renders it in the body its SDKs parse; `retry_after_s` becomes the
`Retry-After` header that the SDKs' retry loops honour, and `retry` their `x-should-retry` header, which
overrides the status: false where a retry would send (and bill) the request a second time.
"""

from __future__ import annotations

from typing import Literal

#: What went wrong, independent of the wire format; each format maps a kind to its own error type.
Kind = Literal["invalid_request", "authentication", "permission", "not_found", "too_large", "rate_limit",
               "provider", "timeout", "unavailable"]


class ApiError(Exception):
    def __init__(self, status: int, kind: Kind, message: str, *, code: str | None = None,
                 param: str | None = None, retry_after_s: int | None = None,
                 retry: bool | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message
        self.code, self.param, self.retry_after_s, self.retry = code, param, retry_after_s, retry


def invalid(message: str, *, param: str | None = None, code: str = "invalid_request") -> ApiError:
    return ApiError(400, "invalid_request", message, code=code, param=param)


def unauthenticated() -> ApiError:
    """One answer for a missing, unknown, revoked or expired key: never say whether a key exists."""
    return ApiError(401, "authentication", "invalid or missing API key", code="invalid_api_key")
