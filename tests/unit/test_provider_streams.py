"""The provider adapters against the simulator's real HTTP server (in this process): streamed pieces,
usage on streams, tools and tool results in both APIs, JSON schema output, pass-through parameters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gateway_consumer.output_guard import json_problem
from gateway_consumer.providers import ProviderCall, ProviderReply
from gateway_consumer.providers.anthropic import Anthropic
from gateway_consumer.providers.base import Delta
from gateway_consumer.providers.http1 import ConnectionPool, ProviderHTTP
from gateway_consumer.providers.openai_compat import OpenAICompatible
from gateway_consumer.simulator import fast_path
from gateway_consumer.simulator.profiles import Profile, Profiles
from gateway_consumer.simulator.server import create_app

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                   "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {
        "type": "object", "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}}}}}]


def _params(**changes: Any) -> Any:
    return {"max_tokens": None, "temperature": None, "top_p": None, "stream": False, "response_format": None,
            "stop": [], "tools_json": None, "tool_choice_json": None, "response_schema_json": None,
            "extra_json": None} | changes


def _msg(role: str, content: str, **more: Any) -> Any:
    base = {"role": role, "content": content, "name": None, "tool_calls_json": None, "tool_call_id": None}
    return base | more


Run = Callable[[str, ProviderCall], Awaitable[ProviderReply]]


@pytest.fixture
def run() -> Run:
    """Calls one adapter ("openai" or "anthropic") against a simulator served on a free port."""

    async def call(kind: str, provider_call: ProviderCall) -> ProviderReply:
        profiles = Profiles(default=Profile(median_ms=20, p99_ms=20, ttft_share=0.5))
        # as `streamgate simulator` serves it
        runner, server = await fast_path.start(create_app(profiles, seed=1), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}/v1"
        adapter = Anthropic(url) if kind == "anthropic" else OpenAICompatible(url)
        try:
            pool = ConnectionPool()
            return await adapter.complete(ProviderHTTP(pool), provider_call)
        finally:
            pool.close()
            server.close()
            await runner.cleanup()

    return call


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_stream_reports_each_piece_and_counts_usage(run: Run, kind: str) -> None:
    deltas: list[Delta] = []
    call = ProviderCall("sim-small", [_msg("system", "be brief"), _msg("user", "tell me about streams")],
                        _params(stream=True), deltas.append)
    reply = asyncio.run(run(kind, call))
    assert len(deltas) > 1 and "".join(d.text for d in deltas) == reply.content and reply.content
    assert reply.usage_source == "provider" and reply.prompt_tokens > 0 and reply.completion_tokens > 0
    assert reply.ttft_ms is not None and reply.finish_reason == "stop" and reply.tool_calls is None


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_in_openai_format_from_either_api(run: Run, kind: str, stream: bool) -> None:
    deltas: list[Delta] = []
    call = ProviderCall("sim-small", [_msg("user", "what time is it")],
                        _params(stream=stream, tools_json=json.dumps(TOOLS), tool_choice_json=json.dumps(
                            {"type": "function", "function": {"name": "get_time"}})),
                        deltas.append if stream else None)
    reply = asyncio.run(run(kind, call))
    assert reply.finish_reason == "tool_calls" and reply.content == ""
    [tool] = reply.tool_calls or []
    assert tool["type"] == "function" and tool["id"] and tool["function"]["name"] == "get_time"
    assert json.loads(tool["function"]["arguments"]) == {"zone": "UTC"}
    if stream:  # the deltas, assembled as a caller would, give the same call
        calls: dict[int, dict[str, str]] = {}
        for d in deltas:
            for piece in d.tool_calls or []:
                slot = calls.setdefault(piece["index"], {"name": "", "arguments": ""})
                slot["name"] += piece["function"].get("name") or ""
                slot["arguments"] += piece["function"].get("arguments") or ""
        assert calls == {0: {"name": "get_time", "arguments": tool["function"]["arguments"]}}


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_tool_round_trip_ends_in_text(run: Run, kind: str) -> None:
    """CALL_TOOL asks for a call of the first tool; the tool's result then gets a text answer."""
    first = asyncio.run(run(kind, ProviderCall("sim-small", [_msg("user", "CALL_TOOL weather in Oslo")],
                                               _params(tools_json=json.dumps(TOOLS)))))
    [tool] = first.tool_calls or []
    assert tool["function"]["name"] == "get_weather"
    assert json.loads(tool["function"]["arguments"])["city"]
    conversation = [_msg("user", "CALL_TOOL weather in Oslo"),
                    _msg("assistant", "", tool_calls_json=json.dumps([tool])),
                    _msg("tool", "sunny, 21C", tool_call_id=tool["id"])]
    second = asyncio.run(run(kind, ProviderCall("sim-small", conversation,
                                                _params(tools_json=json.dumps(TOOLS)))))
    assert second.tool_calls is None and second.finish_reason == "stop"
    assert second.content == "tool said: sunny, 21C"


def test_json_schema_output_matches_the_schema(run: Run) -> None:
    schema = {"name": "city", "strict": True, "schema": {
        "type": "object", "required": ["name", "population", "tags"],
        "properties": {"name": {"type": "string"}, "population": {"type": "integer", "minimum": 5},
                       "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2}}}}
    params = _params(response_format="json_schema", response_schema_json=json.dumps(schema))
    reply = asyncio.run(run("openai", ProviderCall("sim-small", [_msg("user", "a city")], params)))
    assert json_problem(reply.content, params) is None
    assert json.loads(reply.content)["population"] == 5


def test_pass_through_parameters_reach_the_body() -> None:
    tool_call = [{"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]
    messages = [_msg("system", "sys"), _msg("user", "hi"),
                _msg("assistant", "", tool_calls_json=json.dumps(tool_call)),
                _msg("tool", "12:00", tool_call_id="call_1"), _msg("tool", "13:00", tool_call_id="call_2")]
    params = _params(tools_json=json.dumps(TOOLS), tool_choice_json="required",
                     extra_json=json.dumps({"seed": 7, "top_k": 3, "model": "not-this-one"}))
    openai = OpenAICompatible("http://x/v1")._body(ProviderCall("m", messages, params))
    assert openai["seed"] == 7 and openai["model"] == "m" and openai["tool_choice"] == "required"
    assert openai["messages"][2] == {"role": "assistant", "content": None, "tool_calls": tool_call}
    assert openai["messages"][3] == {"role": "tool", "content": "12:00", "tool_call_id": "call_1"}
    anthropic = Anthropic("http://x/v1")._body(ProviderCall("m", messages, params))
    assert "seed" not in anthropic and anthropic["top_k"] == 3 and anthropic["system"] == "sys"
    assert anthropic["tool_choice"] == {"type": "any"}
    assert anthropic["tools"][0] == {"name": "get_weather", "description": "Weather in a city",
                                     "input_schema": TOOLS[0]["function"]["parameters"]}
    assert anthropic["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant",
         "content": [{"type": "tool_use", "id": "call_1", "name": "get_time", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "12:00"},
                                     {"type": "tool_result", "tool_use_id": "call_2", "content": "13:00"}]}]
