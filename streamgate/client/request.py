"""The typed request a service sends, and its conversion to the `Request` event.

Services hand over the raw API key only so the client can hash it: the key itself never leaves the
process, never reaches a topic, a log or a table. Validation here is the cheap, local part (shapes,
ranges); the request path re-validates semantics (known team, model) against live config.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

API_KEY_HASH_PREFIX = "sha256:"
Role = Literal["system", "user", "assistant", "tool"]


def hash_api_key(api_key: str) -> str:
    """The only form of an API key streamgate stores: `sha256:<hex>`."""
    return API_KEY_HASH_PREFIX + hashlib.sha256(api_key.encode()).hexdigest()


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str
    name: str | None = None
    tool_calls_json: str | None = Field(default=None, description="an assistant's tool calls (OpenAI JSON)")
    tool_call_id: str | None = Field(default=None, description="a tool message: the call it answers")


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stream: bool = False
    response_format: str | None = None
    stop: list[str] = Field(default_factory=list, max_length=16)
    tools_json: str | None = None
    tool_choice_json: str | None = None
    response_schema_json: str | None = None
    extra_json: str | None = Field(default=None, description="other provider parameters, a JSON object")


class ChatRequest(BaseModel):
    """One chat-completion request, as a producing service describes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    team: str = Field(min_length=1, max_length=128)
    project: str = Field(min_length=1, max_length=128)
    model: str = Field(min_length=1, max_length=256, description="a model name or an alias")
    messages: list[ChatMessage] = Field(min_length=1)
    api_key: str | None = Field(default=None, repr=False, exclude=True, description="hashed, never sent")
    api_key_id: str | None = None
    request_id: str = Field(default_factory=lambda: str(uuid.uuid4()), min_length=1, max_length=128)
    trace_id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1, max_length=128)
    session_id: str | None = None
    user_id: str | None = None
    params: Params = Field(default_factory=Params)
    tags: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, str] = Field(default_factory=dict)
    region: str | None = None
    reply_partition: int | None = Field(default=None, ge=0, description="where the caller waits (replies)")
    created_at_ms: int = Field(default_factory=lambda: int(time.time() * 1000), gt=0)
    deadline_at_ms: int | None = Field(default=None, gt=0, description="when the caller stops waiting (Unix "
                                       "ms): no provider attempt starts after it")

    @model_validator(mode="after")
    def _one_key_form(self) -> ChatRequest:
        if (self.api_key is None) == (self.api_key_id is None):
            raise ValueError("give exactly one of api_key (hashed by the client) or api_key_id")
        if self.api_key_id is not None and not self.api_key_id.startswith(API_KEY_HASH_PREFIX):
            raise ValueError(f"api_key_id must be a hash starting with {API_KEY_HASH_PREFIX!r}")
        if self.deadline_at_ms is not None and self.deadline_at_ms <= self.created_at_ms:
            raise ValueError("deadline_at_ms must be after created_at_ms")
        return self

    def with_timeout(self, timeout_s: float) -> ChatRequest:
        """This request with `deadline_at_ms` `timeout_s` after its creation, unless it already has one."""
        if self.deadline_at_ms is not None:
            return self
        return self.model_copy(update={"deadline_at_ms": self.created_at_ms + max(1, int(timeout_s * 1000))})

    def key_id(self) -> str:
        return self.api_key_id if self.api_key_id is not None else hash_api_key(self.api_key or "")

    def to_event(self) -> dict[str, Any]:
        """The `Request` Avro record (see schemas/avro/request.avsc)."""
        return {
            "request_id": self.request_id,
            "trace_id": self.trace_id,
            "session_id": self.session_id,
            "team": self.team,
            "project": self.project,
            "api_key_id": self.key_id(),
            "user_id": self.user_id,
            "model": self.model,
            "messages": [m.model_dump() for m in self.messages],
            "params": self.params.model_dump(),
            "tags": dict(self.tags),
            "metadata": dict(self.metadata),
            "region": self.region,
            "reply_partition": self.reply_partition,
            "deadline_at": self.deadline_at_ms,
            "created_at": self.created_at_ms,
        }
