"""Anthropic's Messages API on the wire: bodies in (system, content blocks, tools), messages, stream
events and errors out.

Inside, a request is one shape whichever API it came in (OpenAI's messages with tool calls as JSON), so
the dispatcher's adapters translate once, to the provider's own API.
"""

from __future__ import annotations

import json
from typing import Any

from frontdoor.draft import Draft, text_of
from frontdoor.exceptions import ApiError, Kind, invalid

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
_MAPPED = {"model", "messages", "system", "max_tokens", "stop_sequences", "temperature", "top_p", "stream",
           "tools", "tool_choice", "metadata"}


def parse_messages(body: Any) -> Draft:
    """A Draft from a /v1/messages body, or an ApiError (400) naming the offending parameter."""
    if not isinstance(body, dict):
        raise invalid("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model: Field required", param="model")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise invalid("max_tokens: Field required (a positive integer)", param="max_tokens")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise invalid("messages: at least one message is required", param="messages")
    messages: list[dict[str, Any]] = []
    if (system := body.get("system")) is not None:
        messages.append({"role": "system", "content": text_of(system, "system")})
    for i, m in enumerate(raw):
        messages += _message(m, i)
    params: dict[str, Any] = {"max_tokens": max_tokens, "stream": bool(body.get("stream"))}
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise invalid(f"{name}: must be a number", param=name)
        params[name] = value
    stops = body.get("stop_sequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise invalid("stop_sequences: must be an array of strings", param="stop_sequences")
    params["stop"] = stops
    if (tools := body.get("tools")) is not None:
        params["tools_json"] = json.dumps([_tool(t, i) for i, t in enumerate(tools or [])])
    if (choice := body.get("tool_choice")) is not None:
        params["tool_choice_json"] = json.dumps(_tool_choice(choice))
    if extra := {k: v for k, v in body.items() if k not in _MAPPED}:
        params["extra_json"] = json.dumps(extra)
    metadata = body.get("metadata") or {}
    user = metadata.get("user_id") if isinstance(metadata, dict) else None
    return Draft(model, messages, params, user if isinstance(user, str) else None, {}, params["stream"], True)


def _message(m: Any, i: int) -> list[dict[str, Any]]:
    """One Anthropic message; a user turn of tool results becomes one tool message per result."""
    where = f"messages.{i}"
    if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
        raise invalid(f"{where}.role: must be 'user' or 'assistant'", param=f"{where}.role")
    content = m.get("content")
    if isinstance(content, str):
        return [{"role": m["role"], "content": content}]
    if not isinstance(content, list):
        raise invalid(f"{where}.content: must be a string or an array of content blocks", param=where)
    texts, calls, results = [], [], []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            arguments = json.dumps(block.get("input", {}))
            calls.append({"id": block.get("id"), "type": "function",
                          "function": {"name": block.get("name"), "arguments": arguments}})
        elif kind == "tool_result":
            results.append({"role": "tool", "tool_call_id": str(block.get("tool_use_id")),
                            "content": text_of(block.get("content"), f"{where}.content.{j}.content")})
        else:
            raise invalid(f"{where}.content.{j}: block type {kind!r} is not supported (text, tool_use, "
                          "tool_result)", param=where)
    out: list[dict[str, Any]] = results
    if texts or calls or not results:
        turn: dict[str, Any] = {"role": m["role"], "content": "".join(texts)}
        if calls:
            turn["tool_calls_json"] = json.dumps(calls)
        out = [*results, turn]
    return out


def _tool(t: Any, i: int) -> dict[str, Any]:
    if not isinstance(t, dict) or not isinstance(t.get("name"), str):
        raise invalid(f"tools.{i}.name: Field required", param=f"tools.{i}")
    return {"type": "function", "function": {"name": t["name"], "description": t.get("description", ""),
                                             "parameters": t.get("input_schema") or {"type": "object"}}}


def _tool_choice(choice: Any) -> Any:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}
    if kind in ("auto", "any", "none"):
        return {"auto": "auto", "any": "required", "none": "none"}[kind]
    raise invalid("tool_choice: type must be auto, any, tool or none", param="tool_choice")


# -- answers ---------------------------------------------------------------------------------------------
def message_id(request_id: str) -> str:
    return f"msg_{request_id}"


def usage_of(response: dict[str, Any]) -> dict[str, Any]:
    u = response.get("usage") or {}
    return {"input_tokens": int(u.get("prompt_tokens") or 0),
            "output_tokens": int(u.get("completion_tokens") or 0),
            "cache_read_input_tokens": int(u.get("cached_tokens") or 0), "cache_creation_input_tokens": 0}


def tool_blocks(tool_calls_json: str | None) -> list[dict[str, Any]]:
    blocks = []
    for call in json.loads(tool_calls_json or "[]"):
        function = call.get("function") or {}
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except ValueError:
            arguments = {"_raw": function.get("arguments")}
        blocks.append({"type": "tool_use", "id": call.get("id") or "", "name": function.get("name") or "",
                       "input": arguments})
    return blocks


def message(response: dict[str, Any], model: str) -> dict[str, Any]:
    """An Anthropic message object from a final `ok` Response."""
    content: list[dict[str, Any]] = []
    if response.get("content"):
        content.append({"type": "text", "text": response["content"]})
    content += tool_blocks(response.get("tool_calls_json"))
    return {"id": message_id(response["request_id"]), "type": "message", "role": "assistant",
            "model": response.get("model") or model, "content": content,
            "stop_reason": stop_reason(response), "stop_sequence": None, "usage": usage_of(response)}


def stop_reason(response: dict[str, Any]) -> str:
    return _STOP.get(response.get("finish_reason") or "stop", "end_turn")


def message_start(request_id: str, model: str) -> dict[str, Any]:
    return {"type": "message_start", "message": {
        "id": message_id(request_id), "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}}


_TYPES: dict[Kind, str] = {
    "invalid_request": "invalid_request_error", "authentication": "authentication_error",
    "permission": "permission_error", "not_found": "not_found_error", "too_large": "request_too_large",
    "rate_limit": "rate_limit_error", "provider": "api_error", "timeout": "api_error",
    "unavailable": "overloaded_error",
}


def error_body(error: ApiError) -> dict[str, Any]:
    return {"type": "error", "error": {"type": _TYPES[error.kind], "message": error.message}}
