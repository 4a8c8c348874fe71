"""A streamed answer as the bytes of its server-sent events and when each goes out.

One description of both APIs' streams (OpenAI's chunks, with the usage chunk when
`stream_options.include_usage` is set; Anthropic's message_start ... message_stop events), written by
the aiohttp handlers (server.py) and by the fast path (fast_path.py) alike, so the two cannot drift.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway_consumer.simulator.server import SimulatedCall


@dataclass(frozen=True)
class Stream:
    """`head` goes out at once, `parts[i]` `at[i]` seconds after the call arrived, `tail` right after the
    last part (or, with no parts, at the time to first token)."""

    head: list[bytes]
    parts: list[bytes]
    at: list[float]
    tail: list[bytes]
    ttft_s: float

    def timeline(self) -> list[tuple[float, bytes]]:
        """(seconds after the call arrived, bytes to write then), in order."""
        out = [(0.0, b"".join(self.head))] if self.head else []
        out += zip(self.at, self.parts, strict=True)
        last_at = self.at[-1] if self.at else self.ttft_s
        if out and out[-1][0] == last_at:
            out[-1] = (last_at, out[-1][1] + b"".join(self.tail))
        else:
            out.append((last_at, b"".join(self.tail)))
        return out


def event(payload: dict[str, Any], name: str | None = None) -> bytes:
    """One server-sent event: `data: <json>`, named when `name` is given (Anthropic's)."""
    named = b"event: " + name.encode() + b"\n" if name else b""
    return named + b"data: " + json.dumps(payload).encode() + b"\n\n"


def schedule(call: SimulatedCall, count: int) -> tuple[float, list[float]]:
    """The profile's pace: the first part after the time to first token, the rest evenly after it."""
    ttft = call.latency_s * call.profile.ttft_share
    pause = call.latency_s * (1 - call.profile.ttft_share) / max(count, 1)
    return ttft, [ttft + i * pause for i in range(count)]


def openai_stream(call: SimulatedCall, body: dict[str, Any]) -> Stream:
    parts = call.parts()
    ttft, at = schedule(call, len(parts))
    tool, finish = call.tool, "tool_calls" if call.tool is not None else "stop"
    head = {"id": "chatcmpl-" + uuid.uuid4().hex[:12], "object": "chat.completion.chunk",
            "created": int(time.time()), "model": call.model}
    events = []
    for i, part in enumerate(parts):
        delta: dict[str, Any] = {"role": "assistant"} if i == 0 else {}
        if tool is None:
            delta["content"] = part
        else:
            fn = {"name": tool.name, "arguments": part} if i == 0 else {"arguments": part}
            delta["tool_calls"] = [{"index": 0, "function": fn} | (
                {"id": tool.id, "type": "function"} if i == 0 else {})]
        events.append(event(head | {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}))
    tail = [event(head | {"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})]
    if (body.get("stream_options") or {}).get("include_usage"):
        tail.append(event(head | {"choices": [], "usage": call.openai_usage()}))
    tail.append(b"data: [DONE]\n\n")
    return Stream([], events, at, tail, ttft)


def anthropic_stream(call: SimulatedCall) -> Stream:
    parts = call.parts()
    ttft, at = schedule(call, len(parts))
    tool = call.tool
    message: dict[str, Any] = {
        "id": "msg_" + uuid.uuid4().hex[:12], "type": "message", "role": "assistant", "model": call.model,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": call.prompt_tokens, "output_tokens": 1}}
    block = ({"type": "text", "text": ""} if tool is None else
             {"type": "tool_use", "id": tool.id, "name": tool.name, "input": {}})
    head = [event({"type": "message_start", "message": message}, "message_start"),
            event({"type": "ping"}, "ping"),
            event({"type": "content_block_start", "index": 0, "content_block": block}, "content_block_start")]
    events = [event({"type": "content_block_delta", "index": 0,
                     "delta": {"type": "text_delta", "text": part} if tool is None else
                     {"type": "input_json_delta", "partial_json": part}}, "content_block_delta")
              for part in parts]
    stop = "tool_use" if tool is not None else "end_turn"
    tail = [event({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            event({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                   "usage": {"output_tokens": call.completion_tokens}}, "message_delta"),
            event({"type": "message_stop"}, "message_stop")]
    return Stream(head, events, at, tail, ttft)
