"""What the simulator answers, in either API's shapes: text, JSON for a schema, or a tool call.

Deterministic (a function of the request), so tests can assert on it:
- `ECHO: <text>` in the prompt: that text back verbatim;
- a JSON response format: a JSON object (for a JSON schema, an instance of it built from its types);
- tools given and the tool choice `required` (Anthropic `any`) or a named function/tool, or `auto` with
  `CALL_TOOL` in the prompt: a call of the named (else the first) tool with arguments built from its
  parameters' schema; never again once the conversation ends with a tool result (unless forced), then
  the answer is `tool said: <the result>`, so a round trip ends.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

_WORDS = ("stream", "gateway", "token", "route", "model", "latency", "budget", "cache", "policy", "event")


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text


def _content_text(content: Any) -> str:
    """A message's text, whether a string (OpenAI) or a list of blocks (Anthropic)."""
    if isinstance(content, list):
        return "\n".join(_content_text(b.get("text") if b.get("type") == "text" else b.get("content"))
                         for b in content if isinstance(b, dict))
    return "" if content is None else str(content)


def prompt_text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(_content_text(m.get("content")) for m in messages)


def tool_result(messages: list[dict[str, Any]]) -> str | None:
    """The tool result the conversation ends with, if it does (OpenAI `tool` message or Anthropic
    `tool_result` block in the last user turn)."""
    if not messages:
        return None
    last = messages[-1]
    if last.get("role") == "tool":
        return _content_text(last.get("content"))
    content = last.get("content")
    if last.get("role") == "user" and isinstance(content, list):
        results = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
        if results:
            return "\n".join(_content_text(b.get("content")) for b in results)
    return None


def answer_text(prompt: str, model: str, tokens: int, json_mode: bool, broken_json: bool,
                schema: Any = None) -> str:
    if "ECHO:" in prompt:
        text = prompt.split("ECHO:", 1)[1].strip()
    else:
        seed = sum(map(ord, prompt[:200]))
        text = " ".join(_WORDS[(seed + i * 7) % len(_WORDS)] for i in range(max(tokens - 1, 1)))
    if not json_mode:
        return text
    if broken_json:
        return '{"answer": "' + text[:40]
    if isinstance(schema, dict):
        return json.dumps(example(schema, text))
    return json.dumps({"answer": text, "model": model})


def example(schema: dict[str, Any], text: str = "x") -> Any:
    """A value valid for a (simple) JSON schema: every property filled, first enum value, minimum
    lengths and bounds respected."""
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return example(schema[key][0], text)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        filled = {name: example(sub, text) for name, sub in (schema.get("properties") or {}).items()}
        return filled | {name: text for name in schema.get("required") or [] if name not in filled}
    if kind == "array":
        item = example(schema.get("items") or {}, text)
        return [item] * max(int(schema.get("minItems") or 1), 1)
    if kind in ("integer", "number"):
        value = max(schema.get("minimum", 1), 1)
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    value = text[: schema.get("maxLength") or 40] or "x"
    return value.ljust(int(schema.get("minLength") or 0), "x")


def _openai_tools(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [((t.get("function") or {}).get("name", ""), (t.get("function") or {}).get("parameters") or {})
            for t in body.get("tools") or []]


def _anthropic_tools(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(t.get("name", ""), t.get("input_schema") or {}) for t in body.get("tools") or []]


def _forced(choice: Any, anthropic: bool) -> tuple[bool, str | None, bool]:
    """(a tool must be called, the named one or None, no tool may be called) from a tool choice."""
    if anthropic:
        kind = (choice or {}).get("type") if isinstance(choice, dict) else None
        return kind in ("any", "tool"), (choice or {}).get("name") if kind == "tool" else None, kind == "none"
    if isinstance(choice, dict):
        return True, (choice.get("function") or {}).get("name"), False
    return choice == "required", None, choice == "none"


def tool_call(body: dict[str, Any], prompt: str, *, anthropic: bool) -> ToolCall | None:
    """The tool call this request gets, if any (rules in the module docstring)."""
    tools = _anthropic_tools(body) if anthropic else _openai_tools(body)
    if not tools:
        return None
    forced, name, never = _forced(body.get("tool_choice"), anthropic)
    if never:
        return None
    if not forced and ("CALL_TOOL" not in prompt or tool_result(body.get("messages") or []) is not None):
        return None
    chosen = next((t for t in tools if t[0] == name), tools[0]) if name else tools[0]
    prefix = "toolu_" if anthropic else "call_"
    return ToolCall(prefix + uuid.uuid4().hex[:12], chosen[0], json.dumps(example(chosen[1], "value")))


def pieces(text: str, words: int = 8) -> list[str]:
    """A text in the pieces a stream sends (a few words each; joined they are the text)."""
    split = text.split(" ")
    return [" ".join(split[i:i + words]) + (" " if i + words < len(split) else "")
            for i in range(0, len(split), words)]
