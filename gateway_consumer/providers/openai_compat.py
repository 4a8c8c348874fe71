"""OpenAI-compatible chat completions: OpenAI, Azure OpenAI, vLLM, Ollama, Together, the simulator.

Tools, tool choice, JSON schema output and any other parameter (`extra_json`: seed, penalties...) pass
through unchanged. Streaming responses (SSE) are assembled here and each piece is reported as it
arrives (`ProviderCall.on_delta`); time to first token is measured at the first content or tool-call
delta. `stream_options.include_usage` asks for usage on streams; without it usage is estimated (and
flagged), so a stream never prices at $0.
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
    requested_format,
    tool_choice,
)
from gateway_consumer.providers.http1 import HTTPTransportError, ProviderHTTP, StreamedReply


def _message(m: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m["role"], "content": m["content"]}
    if m.get("name"):
        out["name"] = m["name"]
    if calls := m.get("tool_calls_json"):
        out["tool_calls"] = json_arg(calls, "tool_calls_json")
        out["content"] = m["content"] or None
    if m.get("tool_call_id"):
        out["tool_call_id"] = m["tool_call_id"]
    return out


class OpenAICompatible:
    def __init__(self, base_url: str, api_key: str | None = None) -> None:
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def _body(self, call: ProviderCall) -> dict[str, Any]:
        p = call.params
        body: dict[str, Any] = {"model": call.model, "messages": [_message(m) for m in call.messages]}
        for key in ("max_tokens", "temperature", "top_p"):
            if p.get(key) is not None:
                body[key] = p[key]
        if p.get("stop"):
            body["stop"] = p["stop"]
        try:
            fmt = requested_format(p)
        except ValueError as exc:
            raise ProviderError("client_error", f"unusable response format: {exc}") from exc
        if fmt.kind == "json_object":
            body["response_format"] = {"type": "json_object"}
        elif fmt.kind == "json_schema":
            body["response_format"] = {"type": "json_schema", "json_schema": fmt.json_schema}
        if tools := json_arg(p.get("tools_json"), "tools_json"):
            body["tools"] = tools
            if (choice := tool_choice(p)) is not None:
                body["tool_choice"] = choice
        if call.streams:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        for key, value in (json_arg(p.get("extra_json"), "extra_json") or {}).items():
            body.setdefault(key, value)  # never overrides what the gateway decided (model, messages...)
        return body

    async def complete(self, http: ProviderHTTP, call: ProviderCall) -> ProviderReply:
        started = time.perf_counter()
        body = self._body(call)
        try:
            if not call.streams:
                reply = await http.post_json(self._url, body, self._headers)
                if reply.status != 200:
                    raise classify_status(reply.status, reply.text(), reply.header("Retry-After"))
                return _parse(reply.json(), call)
            async with http.stream_json(self._url, body, self._headers) as resp:
                if resp.status != 200:
                    text = (await resp.body.read()).decode("utf-8", "replace")
                    raise classify_status(resp.status, text, resp.header("Retry-After"))
                return await _read_stream(resp, call, started)
        except HTTPTransportError as exc:
            raise ProviderError("connection", f"{type(exc).__name__}: {exc}"[:200]) from exc
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ProviderError("bad_response", f"unexpected response shape: {exc}") from exc


def _tool_calls(raw: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if not raw:
        return None
    return [{"id": c.get("id") or f"call_{i}", "type": "function",
             "function": {"name": c["function"]["name"], "arguments": c["function"].get("arguments") or ""}}
            for i, c in enumerate(raw)]


def _usage(usage: dict[str, Any]) -> tuple[int, int, int, int]:
    details = usage.get("prompt_tokens_details") or {}
    completion = usage.get("completion_tokens_details") or {}
    return (int(usage["prompt_tokens"]), int(usage["completion_tokens"]),
            int(details.get("cached_tokens") or 0), int(completion.get("reasoning_tokens") or 0))


def _reply(call: ProviderCall, content: str, finish: str, usage: dict[str, Any] | None,
           tool_calls: list[dict[str, Any]] | None) -> ProviderReply:
    if tool_calls and finish == "stop":
        finish = "tool_calls"
    if usage:
        reply = ProviderReply(content, finish, *_usage(usage))
    else:
        answer = content + json.dumps(tool_calls) if tool_calls else content
        reply = ProviderReply(content, finish, estimate_tokens(prompt_text(call)), estimate_tokens(answer),
                              usage_source="estimated")
    reply.tool_calls = tool_calls
    return reply


def _parse(data: dict[str, Any], call: ProviderCall) -> ProviderReply:
    choice = data["choices"][0]
    message = choice["message"]
    return _reply(call, message.get("content") or "", choice.get("finish_reason") or "stop",
                  data.get("usage"), _tool_calls(message.get("tool_calls")))


async def _read_stream(resp: StreamedReply, call: ProviderCall, started: float) -> ProviderReply:
    parts: list[str] = []
    calls: dict[int, dict[str, Any]] = {}  # tool calls assembled from their deltas, by index
    finish, usage, ttft, ended = "stop", None, None, False
    async for raw in resp.body.lines():
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            ended = True
            break
        chunk = json.loads(data)
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            piece, tool_deltas = delta.get("content") or "", delta.get("tool_calls") or None
            for d in tool_deltas or []:
                slot = calls.setdefault(int(d.get("index") or 0), {"id": None, "name": "", "arguments": ""})
                fn = d.get("function") or {}
                slot["id"] = d.get("id") or slot["id"]
                slot["name"] += fn.get("name") or ""
                slot["arguments"] += fn.get("arguments") or ""
            if piece or tool_deltas:
                ttft = ttft if ttft is not None else (time.perf_counter() - started) * 1000
                parts.append(piece)
                if call.on_delta is not None:
                    call.on_delta(Delta(piece, tool_deltas))
            if choice.get("finish_reason"):
                finish, ended = choice["finish_reason"], True
    if not ended:
        raise ProviderError("connection", "the stream ended before a finish reason")
    tool_calls = [{"id": c["id"] or f"call_{i}", "type": "function",
                   "function": {"name": c["name"], "arguments": c["arguments"]}}
                  for i, c in sorted(calls.items())] or None
    reply = _reply(call, "".join(parts), finish, usage, tool_calls)
    reply.ttft_ms = ttft
    return reply
