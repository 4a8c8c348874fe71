"""OpenAI-compatible chat completions: OpenAI, Azure OpenAI, vLLM, Ollama, Together, the simulator.

Streaming responses (SSE) are assembled here; time to first token is measured at the first content
delta. `stream_options.include_usage` asks for usage on streams; without it usage is estimated (and
flagged), so a stream never prices at $0.
"""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp

from gateway_consumer.providers.base import (
    ProviderCall,
    ProviderError,
    ProviderReply,
    classify_status,
    estimate_tokens,
)


class OpenAICompatible:
    def __init__(self, base_url: str, api_key: str | None = None) -> None:
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def _body(self, call: ProviderCall) -> dict[str, Any]:
        p = call.params
        body: dict[str, Any] = {"model": call.model, "messages": [
            {"role": m["role"], "content": m["content"]} | ({"name": m["name"]} if m.get("name") else {})
            for m in call.messages]}
        for key in ("max_tokens", "temperature", "top_p"):
            if p.get(key) is not None:
                body[key] = p[key]
        if p.get("stop"):
            body["stop"] = p["stop"]
        fmt = p.get("response_format")
        if fmt == "json_object":
            body["response_format"] = {"type": "json_object"}
        elif fmt and fmt != "text":
            body["response_format"] = {"type": "json_schema", "json_schema": {"name": "response",
                                                                              "schema": json.loads(fmt)}}
        if p.get("stream"):
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def complete(self, session: aiohttp.ClientSession, call: ProviderCall) -> ProviderReply:
        started = time.perf_counter()
        try:
            async with session.post(self._url, json=self._body(call), headers=self._headers) as resp:
                if resp.status != 200:
                    raise classify_status(resp.status, await resp.text(), resp.headers.get("Retry-After"))
                if call.params.get("stream"):
                    return await _read_stream(resp, call, started)
                return _parse(await resp.json(content_type=None), call)
        except aiohttp.ClientError as exc:
            raise ProviderError("connection", type(exc).__name__) from exc
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ProviderError("bad_response", f"unexpected response shape: {exc}") from exc


def _parse(data: dict[str, Any], call: ProviderCall) -> ProviderReply:
    choice = data["choices"][0]
    content = choice["message"].get("content") or ""
    usage = data.get("usage")
    if usage:
        details = usage.get("prompt_tokens_details") or {}
        completion = usage.get("completion_tokens_details") or {}
        return ProviderReply(content, choice.get("finish_reason") or "stop", int(usage["prompt_tokens"]),
                             int(usage["completion_tokens"]), int(details.get("cached_tokens") or 0),
                             int(completion.get("reasoning_tokens") or 0))
    return ProviderReply(content, choice.get("finish_reason") or "stop",
                         estimate_tokens(" ".join(m["content"] for m in call.messages)),
                         estimate_tokens(content), usage_source="estimated")


async def _read_stream(resp: aiohttp.ClientResponse, call: ProviderCall, started: float) -> ProviderReply:
    parts: list[str] = []
    finish, usage, ttft = "stop", None, None
    async for raw in resp.content:
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            break
        chunk = json.loads(data)
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                ttft = ttft if ttft is not None else (time.perf_counter() - started) * 1000
                parts.append(piece)
            finish = choice.get("finish_reason") or finish
    content = "".join(parts)
    if usage:
        reply = ProviderReply(content, finish, int(usage["prompt_tokens"]), int(usage["completion_tokens"]))
    else:
        reply = ProviderReply(content, finish, estimate_tokens(" ".join(m["content"] for m in call.messages)),
                              estimate_tokens(content), usage_source="estimated")
    reply.ttft_ms = ttft
    return reply
