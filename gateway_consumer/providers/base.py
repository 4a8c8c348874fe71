"""The one interface every provider adapter implements, and the errors it raises."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway_consumer.providers.http1 import ProviderHTTP
from schemas.events import Message, Params


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of a streamed answer as it arrives: text, and/or tool-call deltas in OpenAI's stream
    format (`[{"index", "id"?, "type"?, "function": {"name"?, "arguments"}}]`)."""

    text: str = ""
    tool_calls: list[dict[str, Any]] | None = None


#: Called by an adapter for each piece of a streamed answer, as it arrives.
OnDelta = Callable[[Delta], None]


@dataclass(frozen=True, slots=True)
class ProviderCall:
    model: str
    messages: list[Message]
    params: Params
    #: Set: the adapter streams from the provider (whatever `params.stream` says) and reports each piece.
    on_delta: OnDelta | None = None

    @property
    def streams(self) -> bool:
        return self.on_delta is not None or bool(self.params.get("stream"))


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
    #: The tool calls the model made, in OpenAI's format: [{"id", "type": "function", "function":
    #: {"name", "arguments"}}] (arguments a JSON string).
    tool_calls: list[dict[str, Any]] | None = None


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

    async def complete(self, http: ProviderHTTP, call: ProviderCall) -> ProviderReply: ...


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


def prompt_text(call: ProviderCall) -> str:
    """The prompt as one text (for estimating its tokens)."""
    return " ".join(m["content"] + (m.get("tool_calls_json") or "") for m in call.messages)


def json_arg(raw: str | None, what: str) -> Any:
    """A pass-through JSON parameter, decoded; a malformed one is the caller's error (not retryable)."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ProviderError("client_error", f"{what} is not valid JSON: {exc.msg}") from exc


def estimate_tokens(text: str) -> int:
    """~4 characters per token; used only when a provider omits usage (then usage_source='estimated')."""
    return max((len(text) + 3) // 4, 1)


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """What shape of answer the caller asked for: `text`, `json_object`, or `json_schema` with OpenAI's
    `json_schema` object ({"name", "schema", "strict"?})."""

    kind: str
    json_schema: dict[str, Any] | None = None

    @property
    def schema(self) -> Any:
        return (self.json_schema or {}).get("schema")


TEXT = ResponseFormat("text")


def requested_format(params: Params) -> ResponseFormat:
    """`response_schema_json` (the front door's json_schema) wins; else `response_format` is text,
    json_object, json_schema (without a schema: any object) or a JSON schema itself (older producers).
    Raises ValueError on a schema that is not JSON."""
    if raw := params.get("response_schema_json"):
        spec = json.loads(raw)
        if not isinstance(spec, dict):
            raise ValueError("response_schema_json must be a JSON object")
        wrapped = spec if "schema" in spec else {"name": "response", "schema": spec}
        return ResponseFormat("json_schema", wrapped)
    fmt = params.get("response_format")
    if not fmt or fmt == "text":
        return TEXT
    if fmt in ("json_object", "json_schema"):
        return ResponseFormat("json_object")
    return ResponseFormat("json_schema", {"name": "response", "schema": json.loads(fmt)})


def tool_choice(params: Params) -> Any:
    """OpenAI `tool_choice` from `tool_choice_json`: "auto" | "none" | "required" | {"type": "function",
    "function": {"name"}}; a bare word that is not JSON-quoted is accepted too."""
    raw = params.get("tool_choice_json")
    if not raw:
        return None
    if raw in ("auto", "none", "required"):
        return raw
    return json_arg(raw, "tool_choice_json")
