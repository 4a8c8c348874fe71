"""Event type names and typed shapes of the events stages handle most.

The TypedDicts mirror the .avsc files (a unit test keeps them in sync), so stage code gets type checking
while the hot path stays on plain dicts that fastavro reads and writes directly.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypedDict


class EventType(StrEnum):
    REQUEST = "Request"
    ROUTED_REQUEST = "RoutedRequest"
    RESPONSE = "Response"
    TELEMETRY = "Telemetry"
    GUARDRAIL_VERDICT = "GuardrailVerdict"
    USAGE_AGGREGATE = "UsageAggregate"
    AUDIT_EVENT = "AuditEvent"
    DEAD_LETTER = "DeadLetter"
    CONFIG_RECORD = "ConfigRecord"
    API_KEY = "ApiKey"
    RESPONSE_CHUNK = "ResponseChunk"
    DOCUMENT = "Document"


class Message(TypedDict):
    role: str
    content: str
    name: str | None
    tool_calls_json: str | None
    tool_call_id: str | None


class Params(TypedDict):
    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    stream: bool
    response_format: str | None
    stop: list[str]
    tools_json: str | None
    tool_choice_json: str | None
    response_schema_json: str | None
    extra_json: str | None


class Request(TypedDict):
    request_id: str
    trace_id: str
    session_id: str | None
    team: str
    project: str
    api_key_id: str
    user_id: str | None
    model: str
    messages: list[Message]
    params: Params
    tags: dict[str, str]
    metadata: dict[str, str]
    region: str | None
    reply_partition: int | None
    deadline_at: int | None
    created_at: int


class Usage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int


class RagChunkRef(TypedDict):
    collection: str
    doc_id: str
    doc_version: int
    chunk_id: str


class Response(TypedDict):
    request_id: str
    trace_id: str
    team: str
    project: str
    api_key_id: str
    status: str
    reason_code: str | None
    message: str | None
    content: str | None
    tool_calls_json: str | None
    finish_reason: str | None
    provider: str | None
    model: str | None
    target_index: int | None
    cache_hit: bool
    cache_kind: str | None
    usage: Usage
    cost_nanousd: int
    latency_ms: float | None
    rag_chunks: list[RagChunkRef]
    created_at: int
    completed_at: int


class Telemetry(TypedDict):
    event_id: str
    request_id: str
    trace_id: str
    attempt: int
    fallback_index: int
    team: str
    project: str
    api_key_id: str
    user_id: str | None
    provider: str
    model: str
    region: str
    status: str
    error_class: str | None
    http_status: int | None
    stream: bool
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    usage_source: str
    latency_ms: float
    ttft_ms: float | None
    cache_hit: bool
    cache_kind: str | None
    cost_nanousd: int
    price_version: str | None
    routing_config_version: str | None
    tags: dict[str, str]
    rag_chunks: list[RagChunkRef]
    started_at: int
    ended_at: int


class DeadLetter(TypedDict):
    event_id: str
    source_topic: str
    partition: int
    offset: int
    stage: str
    reason_code: str
    message: str
    original_key: bytes | None
    original_value: bytes
    request_id: str | None
    failed_at: int


#: The Kafka header that names the caller's reply partition (ASCII digits) on a `requests.rejected`
#: record: the request path writes it, the dispatcher reads it (the Response has no field for it).
REPLY_PARTITION_HEADER = "reply_partition"


class ResponseChunk(TypedDict):
    request_id: str
    dispatch_id: str
    seq: int
    delta: str
    tool_calls_json: str | None
    provider: str | None
    model: str | None
    created_at: int
