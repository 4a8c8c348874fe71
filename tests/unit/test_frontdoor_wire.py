"""The front door's wire formats: OpenAI and Anthropic bodies, errors and SSE framing (pure logic)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from frontdoor import anthropic_wire, openai_wire
from frontdoor.draft import Draft
from frontdoor.exceptions import ApiError
from frontdoor.outcomes import error_for, retry_after_s
from frontdoor.streaming import AnthropicStream, OpenAIStream


def _chat(**over: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **over}


def test_openai_body_maps_onto_the_request_event() -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    draft = openai_wire.parse_chat(_chat(
        messages=[{"role": "developer", "content": [{"type": "text", "text": "be "},
                                                    {"type": "text", "text": "brief"}]},
                  {"role": "user", "content": "weather?"},
                  {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                                                                          "function": {"name": "get_weather",
                                                                                       "arguments": "{}"}}]},
                  {"role": "tool", "tool_call_id": "c1", "content": "sunny"}],
        max_completion_tokens=50, temperature=0.2, stop="END", tools=tools, tool_choice="auto",
        response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}},
        user="u1", metadata={"ticket": "42"}, seed=7, stream=True, stream_options={"include_usage": True}))
    assert [m["role"] for m in draft.messages] == ["system", "user", "assistant", "tool"]
    assert draft.messages[0]["content"] == "be brief"
    assert json.loads(draft.messages[2]["tool_calls_json"])[0]["id"] == "c1"
    assert draft.messages[3]["tool_call_id"] == "c1"
    p = draft.params
    assert (p["max_tokens"], p["temperature"], p["stop"], p["stream"]) == (50, 0.2, ["END"], True)
    assert json.loads(p["tools_json"]) == tools and json.loads(p["tool_choice_json"]) == "auto"
    assert json.loads(p["response_format"]) == {"type": "object"}
    assert json.loads(p["response_schema_json"])["name"] == "w"
    assert json.loads(p["extra_json"]) == {"seed": 7}  # carried through to the provider
    assert (draft.user, draft.metadata, draft.include_usage) == ("u1", {"ticket": "42"}, True)


@pytest.mark.parametrize(("body", "param"), [
    ([], None),
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    (_chat(messages=[]), "messages"),
    (_chat(n=2), "n"),
    (_chat(temperature="hot"), "temperature"),
    (_chat(messages=[{"role": "user", "content": [{"type": "image_url"}]}]), "messages[0].content"),
    (_chat(messages=[{"role": "wizard", "content": "x"}]), "messages[0].role"),
    (_chat(messages=[{"role": "tool", "content": "x"}]), "messages[0].tool_call_id"),
    (_chat(response_format={"type": "yaml"}), "response_format"),
    (_chat(stop=[1, 2]), "stop"),
])
def test_openai_bad_bodies_are_400_naming_the_parameter(body: Any, param: str | None) -> None:
    with pytest.raises(ApiError) as err:
        openai_wire.parse_chat(body)
    assert err.value.status == 400 and err.value.param == param
    assert openai_wire.error_body(err.value)["error"]["type"] == "invalid_request_error"


def test_anthropic_body_maps_system_tools_and_tool_results() -> None:
    draft = anthropic_wire.parse_messages({
        "model": "claude-3-5-haiku", "max_tokens": 100, "system": "be brief",
        "messages": [{"role": "user", "content": "weather?"},
                     {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "w",
                                                        "input": {"city": "Oslo"}}]},
                     {"role": "user", "content": [
                         {"type": "tool_result", "tool_use_id": "t1", "content": "sunny"},
                         {"type": "text", "text": "and tomorrow?"}]}],
        "tools": [{"name": "w", "description": "weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any"}, "metadata": {"user_id": "u9"}, "top_k": 5})
    assert [m["role"] for m in draft.messages] == ["system", "user", "assistant", "tool", "user"]
    call = json.loads(draft.messages[2]["tool_calls_json"])[0]
    assert call["function"] == {"name": "w", "arguments": json.dumps({"city": "Oslo"})}
    assert draft.messages[3] == {"role": "tool", "tool_call_id": "t1", "content": "sunny"}
    assert json.loads(draft.params["tools_json"])[0]["function"]["parameters"] == {"type": "object"}
    assert json.loads(draft.params["tool_choice_json"]) == "required"
    assert json.loads(draft.params["extra_json"]) == {"top_k": 5}
    assert draft.user == "u9" and draft.params["max_tokens"] == 100


def test_anthropic_requires_max_tokens_and_renders_its_error_shape() -> None:
    with pytest.raises(ApiError) as err:
        anthropic_wire.parse_messages({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert anthropic_wire.error_body(err.value) == {
        "type": "error", "error": {"type": "invalid_request_error", "message": err.value.message}}


def _response(status: str, code: str | None = None, message: str = "", **over: Any) -> dict[str, Any]:
    return {"request_id": "r1", "status": status, "reason_code": code, "message": message, "content": "",
            "tool_calls_json": None, "finish_reason": "stop", "model": "m",
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "cached_tokens": 0, "reasoning_tokens": 0},
            **over}


@pytest.mark.parametrize(("code", "status"), [
    ("unknown_model", 404), ("no_messages", 400), ("pii_blocked", 403), ("access_denied", 403),
    ("identity_mismatch", 403), ("budget_exceeded", 429), ("all_targets_failed", 502), ("key_revoked", 401),
    ("unauthenticated", 401), ("key_expired", 401), ("no_target_in_region", 403),
    ("deadline_exceeded", 504), ("invalid_deadline", 400),
])
def test_reason_codes_become_the_statuses_sdks_expect(code: str, status: int) -> None:
    error = error_for(_response("rejected" if status < 500 else "failed", code, "team search: requests per "
                                "minute 3 over the limit 2"))
    assert error.status == status
    if status == 401:  # the same words whatever the key's state
        assert error.message == "invalid or missing API key"


def test_a_provider_timeout_is_504_and_a_budget_says_when_to_retry() -> None:
    assert error_for(_response("failed", "all_targets_failed", "openai/x: timeout: no answer")).status == 504
    at = 1_700_000_000 + 45  # 45 s into a minute... of some UTC day
    assert retry_after_s("requests per minute 3 over the limit 2", at) == 60 - (at % 60)
    assert 0 < retry_after_s("daily spend (nano-USD) 9 over the limit 8", at) <= 86_400


def _frames(raw: list[bytes]) -> list[Any]:
    out = []
    for frame in raw:
        data = frame.decode().split("data: ", 1)[1].strip()
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_openai_stream_follows_one_dispatch_and_ends_with_usage_and_done() -> None:
    stream = OpenAIStream("r1", Draft("m", [], include_usage=True))
    frames = stream.piece({"dispatch_id": "a", "seq": 0, "delta": "Hel", "model": "gpt"})
    frames += stream.piece({"dispatch_id": "b", "seq": 0, "delta": "XXX"})  # a redispatch: not mixed in
    frames += stream.piece({"dispatch_id": "a", "seq": 1, "delta": "lo"})
    frames += stream.final(_response("ok", content="Hello world"))
    parsed = _frames(frames)
    text = "".join(f["choices"][0]["delta"].get("content") or "" for f in parsed[:-2] if f["choices"])
    assert text == "Hello world"  # what the pieces missed comes before the end
    assert parsed[0]["choices"][0]["delta"]["role"] == "assistant"
    assert parsed[-3]["choices"][0]["finish_reason"] == "stop"
    assert parsed[-2]["usage"]["total_tokens"] == 7 and parsed[-2]["choices"] == []
    assert parsed[-1] == "[DONE]"


def test_anthropic_stream_event_sequence_with_a_tool_call() -> None:
    stream = AnthropicStream("r1", Draft("claude", []))
    frames = stream.piece({"dispatch_id": "a", "seq": 0, "delta": "Let me check"})
    calls = json.dumps([{"id": "t1", "type": "function", "function": {"name": "w", "arguments": '{"c": 1}'}}])
    frames += stream.final(_response("ok", content="Let me check", tool_calls_json=calls,
                                     finish_reason="tool_calls"))
    kinds = [f.decode().split("\n", 1)[0].removeprefix("event: ") for f in frames]
    assert kinds == ["message_start", "content_block_start", "content_block_delta", "content_block_stop",
                     "content_block_start", "content_block_delta", "content_block_stop", "message_delta",
                     "message_stop"]
    delta = _frames([frames[-2]])[0]
    assert delta["delta"]["stop_reason"] == "tool_use" and delta["usage"]["output_tokens"] == 4


def test_a_refusal_after_the_stream_began_is_an_error_event() -> None:
    stream = OpenAIStream("r1", Draft("m", []))
    stream.piece({"dispatch_id": "a", "seq": 0, "delta": "x"})
    (frame,) = stream.final(_response("failed", "stream_interrupted", "provider went away"))
    assert _frames([frame])[0]["error"]["type"] == "api_error"
