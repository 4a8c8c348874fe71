"""What the client raises: a request that cannot be sent, and an answer that is not an answer."""

from __future__ import annotations

from typing import Any


class InvalidRequestError(ValueError):
    """The request cannot be sent: it fails validation or does not match the Request schema."""


class DeliveryError(RuntimeError):
    """The broker did not accept the event (after the producer's own retries)."""


class GatewayError(RuntimeError):
    """The gateway answered, but not with a completion: `response` is its final Response event."""

    def __init__(self, response: dict[str, Any]) -> None:
        self.response = response
        self.request_id: str = response["request_id"]
        self.reason_code: str = response.get("reason_code") or ""
        super().__init__(f"{response['status']} ({self.reason_code}): {response.get('message') or ''}")


class RequestRejectedError(GatewayError):
    """The request path refused the request (validation, guardrails, access, budgets, routing)."""


class RequestFailedError(GatewayError):
    """The request was routed but no provider produced an acceptable answer."""


class ReplyTimeoutError(TimeoutError):
    """No final answer arrived within the caller's timeout; the request may still be answered later."""

    def __init__(self, request_id: str, timeout_s: float) -> None:
        self.request_id = request_id
        super().__init__(f"no answer to {request_id} within {timeout_s:g} s")
