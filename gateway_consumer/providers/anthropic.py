"""Anthropic Messages API (non-streaming): system prompt separated, usage from input/output tokens."""

from __future__ import annotations

from typing import Any

import aiohttp

from gateway_consumer.providers.base import ProviderCall, ProviderError, ProviderReply, classify_status

API_VERSION = "2023-06-01"
_FINISH = {"end_turn": "stop", "max_tokens": "length", "stop_sequence": "stop", "tool_use": "tool_calls"}


class Anthropic:
    def __init__(self, base_url: str, api_key: str | None = None) -> None:
        self._url = base_url.rstrip("/") + "/messages"
        self._headers = {"anthropic-version": API_VERSION} | ({"x-api-key": api_key} if api_key else {})

    def _body(self, call: ProviderCall) -> dict[str, Any]:
        system = "\n".join(m["content"] for m in call.messages if m["role"] == "system")
        body: dict[str, Any] = {
            "model": call.model, "max_tokens": call.params.get("max_tokens") or 1024,
            "messages": [{"role": m["role"], "content": m["content"]}
                         for m in call.messages if m["role"] in ("user", "assistant")]}
        if system:
            body["system"] = system
        for key in ("temperature", "top_p"):
            if call.params.get(key) is not None:
                body[key] = call.params[key]
        if call.params.get("stop"):
            body["stop_sequences"] = call.params["stop"]
        return body

    async def complete(self, session: aiohttp.ClientSession, call: ProviderCall) -> ProviderReply:
        try:
            async with session.post(self._url, json=self._body(call), headers=self._headers) as resp:
                if resp.status != 200:
                    raise classify_status(resp.status, await resp.text(), resp.headers.get("Retry-After"))
                data = await resp.json(content_type=None)
        except aiohttp.ClientError as exc:
            raise ProviderError("connection", type(exc).__name__) from exc
        try:
            text = "".join(b.get("text", "") for b in data["content"] if b.get("type") == "text")
            usage = data["usage"]
            return ProviderReply(text, _FINISH.get(data.get("stop_reason") or "", "stop"),
                                 int(usage["input_tokens"]), int(usage["output_tokens"]),
                                 int(usage.get("cache_read_input_tokens") or 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderError("bad_response", f"unexpected response shape: {exc}") from exc
