"""Server-sent events for a streamed answer, in each API's own framing.

Pieces arrive from `replies.chunks` as the provider sends them; the final Response ends the stream. A
stream follows the first dispatch it sees (`dispatch_id`): should the dispatcher be restarted mid-answer,
the redispatch streams under a new id and is not mixed in; the final Response is the committed answer,
and whatever of its text the pieces did not carry is sent before the end.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from typing import Any

from frontdoor import anthropic_wire, openai_wire
from frontdoor.draft import Draft
from frontdoor.exceptions import ApiError
from frontdoor.outcomes import error_for


class SseStream(ABC):
    def __init__(self, request_id: str, draft: Draft) -> None:
        self.request_id, self.draft = request_id, draft
        self.model = draft.model
        self.created = int(time.time())
        self.dispatch_id: str | None = None
        self.sent = ""  # text already streamed
        self.started = False

    def _follows(self, chunk: dict[str, Any]) -> bool:
        if self.dispatch_id is None:
            self.dispatch_id = chunk["dispatch_id"]
            self.model = chunk.get("model") or self.model
        return bool(chunk["dispatch_id"] == self.dispatch_id)

    def _rest(self, response: dict[str, Any]) -> str:
        content = response.get("content") or ""
        return content[len(self.sent):] if content.startswith(self.sent) else ""

    @abstractmethod
    def piece(self, chunk: dict[str, Any]) -> list[bytes]:
        """The frames for one streamed piece (none for a piece of another dispatch)."""

    @abstractmethod
    def final(self, response: dict[str, Any]) -> list[bytes]:
        """The frames that end the stream, from the final Response."""

    @abstractmethod
    def error(self, error: ApiError) -> list[bytes]:
        """The frames that end a stream in error once its status line is sent (a refusal, or no answer
        before the door's timeout): in-band, as the API's own SDKs read it, never a dropped connection."""


def _data(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


class OpenAIStream(SseStream):
    """`chat.completion.chunk` objects, then (with include_usage) a usage chunk, then `[DONE]`."""

    tool_calls_streamed = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _data(openai_wire.chunk(self.request_id, self.model, self.created, delta, finish))

    def _start(self) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def piece(self, chunk: dict[str, Any]) -> list[bytes]:
        if not self._follows(chunk):
            return []
        frames = self._start()
        if chunk.get("delta"):
            self.sent += chunk["delta"]
            frames.append(self._chunk({"content": chunk["delta"]}))
        if chunk.get("tool_calls_json"):
            self.tool_calls_streamed = True
            frames.append(self._chunk({"tool_calls": json.loads(chunk["tool_calls_json"])}))
        return frames

    def final(self, response: dict[str, Any]) -> list[bytes]:
        if response["status"] != "ok":  # after the first piece the status line is sent: an error event
            return self.error(error_for(response))
        self.model = response.get("model") or self.model
        frames = self._start()
        if rest := self._rest(response):
            frames.append(self._chunk({"content": rest}))
        if response.get("tool_calls_json") and not self.tool_calls_streamed:
            calls = json.loads(response["tool_calls_json"])
            frames.append(self._chunk({"tool_calls": [{"index": i, **call} for i, call in enumerate(calls)]}))
        frames.append(self._chunk({}, response.get("finish_reason") or "stop"))
        if self.draft.include_usage:
            frames.append(_data(openai_wire.usage_chunk(self.request_id, self.model, self.created, response)))
        frames.append(b"data: [DONE]\n\n")
        return frames

    def error(self, error: ApiError) -> list[bytes]:
        return [_data(openai_wire.error_body(error))]


def _event(kind: str, obj: dict[str, Any]) -> bytes:
    return f"event: {kind}\n".encode() + _data({"type": kind, **obj})


class AnthropicStream(SseStream):
    """message_start, a text block's start/deltas/stop, tool_use blocks, message_delta, message_stop."""

    text_open = False

    def _start(self) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        start = anthropic_wire.message_start(self.request_id, self.model)
        return [_event("message_start", {"message": start["message"]})]

    def _text(self, text: str) -> list[bytes]:
        frames = []
        if not self.text_open:
            self.text_open = True
            block = {"type": "text", "text": ""}
            frames.append(_event("content_block_start", {"index": 0, "content_block": block}))
        self.sent += text
        delta = {"type": "text_delta", "text": text}
        frames.append(_event("content_block_delta", {"index": 0, "delta": delta}))
        return frames

    def piece(self, chunk: dict[str, Any]) -> list[bytes]:
        if not self._follows(chunk):
            return []
        frames = self._start()
        if chunk.get("delta"):
            frames += self._text(chunk["delta"])
        return frames  # tool calls are sent whole with the final answer

    def final(self, response: dict[str, Any]) -> list[bytes]:
        if response["status"] != "ok":
            return self.error(error_for(response))
        self.model = response.get("model") or self.model
        frames = self._start()
        if rest := self._rest(response):
            frames += self._text(rest)
        index = 0
        if self.text_open:
            frames.append(_event("content_block_stop", {"index": 0}))
            index = 1
        for block in anthropic_wire.tool_blocks(response.get("tool_calls_json")):
            start = {**block, "input": {}}
            frames.append(_event("content_block_start", {"index": index, "content_block": start}))
            frames.append(_event("content_block_delta", {"index": index, "delta": {
                "type": "input_json_delta", "partial_json": json.dumps(block["input"])}}))
            frames.append(_event("content_block_stop", {"index": index}))
            index += 1
        usage = anthropic_wire.usage_of(response)
        frames.append(_event("message_delta", {
            "delta": {"stop_reason": anthropic_wire.stop_reason(response), "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"], "input_tokens": usage["input_tokens"]}}))
        frames.append(_event("message_stop", {}))
        return frames

    def error(self, error: ApiError) -> list[bytes]:
        return [b"event: error\n" + _data(anthropic_wire.error_body(error))]
