"""The one interface every provider adapter implements, and the errors it raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from schemas.events import Message, Params


@dataclass(frozen=True, slots=True)
class ProviderCall:
    model: str
    messages: list[Message]
    params: Params


@dataclass(slots=True)
class ProviderReply:
    content: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    #: "provider" when the API reported usage, "estimated" when the gateway had to count.
    usage_source: str = "provider"
    ttft_ms: float | None = None
    http_status: int = 200


#: Error classes, shared with telemetry (`error_class`).
RETRYABLE = frozenset({"rate_limited", "server_error", "connection"})


@dataclass(slots=True)
class ProviderError(Exception):
    """A failed attempt, classified so the retry and fallback policies can decide what to do."""

    error_class: str  # rate_limited | server_error | connection | timeout | client_error | bad_response
    message: str
    http_status: int | None = None
    retry_after_s: float | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def retryable(self) -> bool:
        return self.error_class in RETRYABLE

    def __str__(self) -> str:
        return f"{self.error_class}: {self.message}"


class Provider(Protocol):
    """An adapter: turns a ProviderCall into one HTTP exchange with a provider's API."""

    async def complete(self, session: aiohttp.ClientSession, call: ProviderCall) -> ProviderReply: ...


def classify_status(status: int, body: str, retry_after: str | None) -> ProviderError:
    after = _seconds(retry_after)
    if status == 429:
        return ProviderError("rate_limited", body[:200], status, after)
    if status >= 500:
        return ProviderError("server_error", body[:200], status, after)
    return ProviderError("client_error", body[:200], status)


def _seconds(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None  # an HTTP-date Retry-After: treated as absent


def estimate_tokens(text: str) -> int:
    """~4 characters per token; used only when a provider omits usage (then usage_source='estimated')."""
    return max((len(text) + 3) // 4, 1)
