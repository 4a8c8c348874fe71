"""Anthropic Messages API, plain and streamed: system prompt separated, tools and tool results mapped
from OpenAI's shapes to Anthropic's (`tool_use` / `tool_result` blocks), usage from input/output tokens.

Streams are read from Anthropic's SSE events (message_start, content_block_start/delta/stop,
message_delta, message_stop); each text or tool-input piece is reported as it arrives in OpenAI's delta
shape, so the rest of the gateway sees one format. Streamed usage: input tokens from message_start,
output tokens from the last message_delta; when a stream carries none, usage is estimated and flagged.
"""

from __future__ import annotations

import json
import time
from typing import Any

from gateway_consumer.providers.base import (
    Delta,
    ProviderCall,
    ProviderError,
    ProviderReply,
    classify_status,
    estimate_tokens,
    json_arg,
    prompt_text,
    tool_choice,
)
from gateway_consumer.providers.http1 import HTTPTransportError, ProviderHTTP, StreamedReply

API_VERSION = "2023-06-01"
_FINISH = {"end_turn": "stop", "max_tokens": "length", "stop_sequence": "stop", "tool_use": "tool_calls"}
#: `extra_json` keys Anthropic's API knows; OpenAI-only ones (seed, penalties...) would be a 400 there.
EXTRA_KEYS = frozenset({"top_k", "metadata", "thinking", "service_tier"})


def _blocks(m: Any) -> list[dict[str, Any]]:
    """One OpenAI-shaped message as Anthropic content blocks."""
    if m["role"] == "tool":
        return [{"type": "tool_result", "tool_use_id": m.get("tool_call_id") or "", "content": m["content"]}]
    blocks: list[dict[str, Any]] = [{"type": "text", "text": m["content"]}] if m["content"] else []
    for c in json_arg(m.get("tool_calls_json"), "tool_calls_json") or []:
        fn = c.get("function") or {}
        blocks.append({"type": "tool_use", "id": c.get("id") or "", "name": fn.get("name") or "",
                       "input": json.loads(fn.get("arguments") or "{}")})
    return blocks


def _messages(call: ProviderCall) -> list[dict[str, Any]]:
    """Tool results travel as user turns; consecutive turns of one role are merged (the API alternates)."""
    out: list[dict[str, Any]] = []
    for m in call.messages:
        if m["role"] == "system":
            continue
        role = "assistant" if m["role"] == "assistant" else "user"
        blocks = _blocks(m)
        if out and out[-1]["role"] == role:
            previous = out[-1]["content"]
            head = [{"type": "text", "text": previous}] if isinstance(previous, str) else previous
            out[-1]["content"] = head + blocks
        elif len(blocks) == 1 and blocks[0]["type"] == "text":
            out.append({"role": role, "content": blocks[0]["text"]})
        else:
            out.append({"role": role, "content": blocks})
    return out


def _tools(raw: Any) -> list[dict[str, Any]]:
    tools = []
    for t in raw:
        fn = t.get("function") or t
        tools.append({"name": fn["name"], "description": fn.get("description") or "",
                      "input_schema": fn.get("parameters") or {"type": "object", "properties": {}}})
    return tools


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice in ("auto", "none"):
        return {"type": choice}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict) and (name := (choice.get("function") or {}).get("name")):
        return {"type": "tool", "name": name}
    return None


class Anthropic:
    def __init__(self, base_url: str, api_key: str | None = None) -> None:
        self._url = base_url.rstrip("/") + "/messages"
        self._headers = {"anthropic-version": API_VERSION} | ({"x-api-key": api_key} if api_key else {})

    def _body(self, call: ProviderCall) -> dict[str, Any]:
        p = call.params
        system = "\n".join(m["content"] for m in call.messages if m["role"] == "system")
        body: dict[str, Any] = {"model": call.model, "max_tokens": p.get("max_tokens") or 1024,
                                "messages": _messages(call)}
        if system:
            body["system"] = system
        for key in ("temperature", "top_p"):
            if p.get(key) is not None:
                body[key] = p[key]
        if p.get("stop"):
            body["stop_sequences"] = p["stop"]
        if tools := json_arg(p.get("tools_json"), "tools_json"):
            body["tools"] = _tools(tools)
            if (choice := _tool_choice(tool_choice(p))) is not None:
                body["tool_choice"] = choice
        for key, value in (json_arg(p.get("extra_json"), "extra_json") or {}).items():
            if key in EXTRA_KEYS:
                body.setdefault(key, value)
        if call.streams:
            body["stream"] = True
        return body

    async def complete(self, http: ProviderHTTP, call: ProviderCall) -> ProviderReply:
        started = time.perf_counter()
        body = self._body(call)
        try:
            if call.streams:
                async with http.stream_json(self._url, body, self._headers) as resp:
                    if resp.status != 200:
                        text = (await resp.body.read()).decode("utf-8", "replace")
                        raise classify_status(resp.status, text, resp.header("Retry-After"))
                    return await _StreamReader(call, started).read(resp)
            reply = await http.post_json(self._url, body, self._headers)
            if reply.status != 200:
                raise classify_status(reply.status, reply.text(), reply.header("Retry-After"))
            data = reply.json()
        except HTTPTransportError as exc:
            raise ProviderError("connection", f"{type(exc).__name__}: {exc}"[:200]) from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderError("bad_response", f"unexpected response shape: {exc}") from exc
        try:
            return _parse(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderError("bad_response", f"unexpected response shape: {exc}") from exc


def _parse(data: dict[str, Any]) -> ProviderReply:
    text = "".join(b.get("text", "") for b in data["content"] if b.get("type") == "text")
    calls = [{"id": b["id"], "type": "function",
              "function": {"name": b["name"], "arguments": json.dumps(b.get("input") or {})}}
             for b in data["content"] if b.get("type") == "tool_use"]
    usage = data["usage"]
    finish = _FINISH.get(data.get("stop_reason") or "", "stop")
    reply = ProviderReply(text, finish, int(usage["input_tokens"]), int(usage["output_tokens"]),
                          int(usage.get("cache_read_input_tokens") or 0))
    reply.tool_calls = calls or None
    return reply


class _StreamReader:
    """The state of one Anthropic SSE stream."""

    def __init__(self, call: ProviderCall, started: float) -> None:
        self.call, self.started = call, started
        self.parts: list[str] = []
        self.tools: list[dict[str, str]] = []
        self.tool_of_block: dict[int, int] = {}  # content block index -> tool call index
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cached = 0
        self.stop_reason: str | None = None
        self.ttft: float | None = None

    def _emit(self, text: str, tool_deltas: list[dict[str, Any]] | None = None) -> None:
        if self.ttft is None:
            self.ttft = (time.perf_counter() - self.started) * 1000
        self.parts.append(text)
        if self.call.on_delta is not None:
            self.call.on_delta(Delta(text, tool_deltas))

    async def read(self, resp: StreamedReply) -> ProviderReply:
        async for raw in resp.body.lines():
            line = raw.strip()
            if line.startswith(b"data:") and self._event(json.loads(line[5:].strip())):
                return self._reply()
        raise ProviderError("connection", "the stream ended before message_stop")

    def _event(self, event: dict[str, Any]) -> bool:
        """Take one event; True at message_stop."""
        kind = event.get("type")
        if kind == "message_start":
            usage = (event.get("message") or {}).get("usage") or {}
            self.input_tokens = usage.get("input_tokens", self.input_tokens)
            self.output_tokens = usage.get("output_tokens") or self.output_tokens
            self.cached = int(usage.get("cache_read_input_tokens") or 0)
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self.tool_of_block[int(event["index"])] = len(self.tools)
                self.tools.append({"id": block["id"], "name": block["name"], "arguments": ""})
                self._emit("", [{"index": index, "id": block["id"], "type": "function",
                                 "function": {"name": block["name"], "arguments": ""}}])
            elif block.get("text"):
                self._emit(block["text"])
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                self._emit(delta["text"])
            elif delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                index = self.tool_of_block[int(event["index"])]
                self.tools[index]["arguments"] += delta["partial_json"]
                self._emit("", [{"index": index, "function": {"arguments": delta["partial_json"]}}])
        elif kind == "message_delta":
            self.stop_reason = (event.get("delta") or {}).get("stop_reason") or self.stop_reason
            usage = event.get("usage") or {}
            self.output_tokens = usage.get("output_tokens", self.output_tokens)
            self.input_tokens = usage.get("input_tokens") or self.input_tokens
        elif kind == "error":
            error = event.get("error") or {}
            kind_of = "rate_limited" if error.get("type") == "rate_limit_error" else "server_error"
            raise ProviderError(kind_of, f"stream error: {error.get('message') or error.get('type')}")
        return kind == "message_stop"

    def _reply(self) -> ProviderReply:
        text = "".join(self.parts)
        calls = [{"id": t["id"], "type": "function", "function": {"name": t["name"],
                                                                  "arguments": t["arguments"] or "{}"}}
                 for t in self.tools] or None
        finish = _FINISH.get(self.stop_reason or "", "stop")
        if self.input_tokens is not None and self.output_tokens is not None:
            reply = ProviderReply(text, finish, int(self.input_tokens), int(self.output_tokens), self.cached)
        else:
            answer = text + (json.dumps(calls) if calls else "")
            reply = ProviderReply(text, finish, estimate_tokens(prompt_text(self.call)),
                                  estimate_tokens(answer), usage_source="estimated")
        reply.tool_calls, reply.ttft_ms = calls, self.ttft
        return reply
