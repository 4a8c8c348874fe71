"""OpenAI's Chat Completions API on the wire: request bodies in, completions, chunks and errors out.

Known parameters map onto the Request event; any other parameter an SDK sends (seed, penalties,
logit_bias, parallel_tool_calls, ...) is carried through to the provider unchanged (`params.extra_json`).
"""

from __future__ import annotations

import json
import time
from typing import Any

from frontdoor.draft import Draft, text_of
from frontdoor.exceptions import ApiError, Kind, invalid

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
          "tool": "tool"}
_MAPPED = {"model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens",
           "temperature", "top_p", "n", "stop", "tools", "tool_choice", "response_format", "user", "metadata"}


def _number(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        raise invalid(f"'{name}' must be {'a number' if kind is float else 'an integer'}", param=name)
    return value


def parse_chat(body: Any) -> Draft:
    """A Draft from a /v1/chat/completions body, or an ApiError (400) naming the offending parameter."""
    if not isinstance(body, dict):
        raise invalid("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("'model' is required and must be a non-empty string", param="model")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise invalid("'messages' must be a non-empty array", param="messages")
    messages = [_message(m, i) for i, m in enumerate(raw_messages)]
    if body.get("n") not in (None, 1):
        raise invalid("only n=1 is supported", param="n")
    params: dict[str, Any] = {
        "max_tokens": _number(body, "max_completion_tokens", int) or _number(body, "max_tokens", int),
        "temperature": _number(body, "temperature", float), "top_p": _number(body, "top_p", float),
        "stream": bool(body.get("stream")), "stop": _stop(body.get("stop")),
    }
    params |= _response_format(body.get("response_format"))
    if (tools := body.get("tools")) is not None:
        if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
            raise invalid("'tools' must be an array of tool objects", param="tools")
        params["tools_json"] = json.dumps(tools)
    if (choice := body.get("tool_choice")) is not None:
        params["tool_choice_json"] = json.dumps(choice)
    extra = {k: v for k, v in body.items() if k not in _MAPPED}
    if extra:
        params["extra_json"] = json.dumps(extra)
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise invalid("'user' must be a string", param="user")
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise invalid("'metadata' must be an object of strings", param="metadata")
    options = body.get("stream_options") or {}
    return Draft(model, messages, params, user, dict(metadata), params["stream"],
                 bool(isinstance(options, dict) and options.get("include_usage")))


def _message(m: Any, i: int) -> dict[str, Any]:
    where = f"messages[{i}]"
    if not isinstance(m, dict):
        raise invalid(f"{where} must be an object", param=where)
    role = _ROLES.get(m.get("role"))  # type: ignore[arg-type]
    if role is None:
        raise invalid(f"{where}.role must be one of {sorted(_ROLES)}", param=f"{where}.role")
    out: dict[str, Any] = {"role": role, "content": text_of(m.get("content"), f"{where}.content")}
    if isinstance(m.get("name"), str):
        out["name"] = m["name"]
    if m.get("tool_calls"):
        out["tool_calls_json"] = json.dumps(m["tool_calls"])
    if role == "tool":
        if not isinstance(m.get("tool_call_id"), str):
            raise invalid(f"{where}.tool_call_id is required for a tool message",
                          param=f"{where}.tool_call_id")
        out["tool_call_id"] = m["tool_call_id"]
    return out


def _stop(stop: Any) -> list[str]:
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= 16:
        return stop
    raise invalid("'stop' must be a string or an array of up to 16 strings", param="stop")


def _response_format(fmt: Any) -> dict[str, Any]:
    """`response_format` as the Request carries it: "text", "json_object", or a JSON schema's text (what
    the output check validates answers against), plus the whole json_schema object for the provider."""
    if fmt is None:
        return {}
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind in ("text", "json_object"):
        return {"response_format": kind}
    if kind == "json_schema" and isinstance(fmt.get("json_schema"), dict):
        spec = fmt["json_schema"]
        return {"response_format": json.dumps(spec.get("schema") or {}),
                "response_schema_json": json.dumps(spec)}
    raise invalid("'response_format' must be {type: text | json_object | json_schema (with json_schema)}",
                  param="response_format")


# -- answers ---------------------------------------------------------------------------------------------
def completion_id(request_id: str) -> str:
    return f"chatcmpl-{request_id}"


def usage_of(response: dict[str, Any]) -> dict[str, Any]:
    u = response.get("usage") or {}
    prompt, completion = int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": int(u.get("cached_tokens") or 0)},
            "completion_tokens_details": {"reasoning_tokens": int(u.get("reasoning_tokens") or 0)}}


def completion(response: dict[str, Any], model: str) -> dict[str, Any]:
    """A chat.completion object from a final `ok` Response."""
    message: dict[str, Any] = {"role": "assistant", "content": response.get("content"), "refusal": None}
    if response.get("tool_calls_json"):
        message["tool_calls"] = json.loads(response["tool_calls_json"])
    return {
        "id": completion_id(response["request_id"]), "object": "chat.completion",
        "created": int(response.get("completed_at") or time.time() * 1000) // 1000,
        "model": response.get("model") or model, "system_fingerprint": None,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": response.get("finish_reason") or "stop"}],
        "usage": usage_of(response),
    }


def chunk(request_id: str, model: str, created: int, delta: dict[str, Any],
          finish_reason: str | None = None) -> dict[str, Any]:
    return {"id": completion_id(request_id), "object": "chat.completion.chunk", "created": created,
            "model": model, "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}


def usage_chunk(request_id: str, model: str, created: int, response: dict[str, Any]) -> dict[str, Any]:
    return {"id": completion_id(request_id), "object": "chat.completion.chunk", "created": created,
            "model": model, "system_fingerprint": None, "choices": [], "usage": usage_of(response)}


_TYPES: dict[Kind, str] = {
    "invalid_request": "invalid_request_error", "authentication": "authentication_error",
    "permission": "permission_error", "not_found": "invalid_request_error",
    "too_large": "invalid_request_error", "rate_limit": "rate_limit_error", "provider": "api_error",
    "timeout": "timeout_error", "unavailable": "api_error",
}


def error_body(error: ApiError) -> dict[str, Any]:
    code = "model_not_found" if error.kind == "not_found" else error.code
    return {"error": {"message": error.message, "type": _TYPES[error.kind], "param": error.param,
                      "code": code}}
