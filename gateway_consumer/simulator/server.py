"""The simulator's HTTP server (aiohttp): `/v1/chat/completions` (JSON or SSE), `/v1/messages` and admin.

Answers are deterministic in their text (a function of the prompt) and random in their timing and
failures (per the model's profile), so tests can assert on content while exercising the error paths.
A prompt containing `ECHO:` gets the rest of that message back verbatim, which lets tests put chosen
text (say, PII) into an answer; tools, JSON schemas and tool results are answered as `answers.py` says.
Both APIs stream (`stream: true`): OpenAI's chunks (with the usage chunk when
`stream_options.include_usage` is set) and Anthropic's events (message_start with the input tokens,
content_block_start/delta/stop, message_delta with the output tokens, message_stop).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway_consumer.simulator.answers import answer_text, pieces, prompt_text, tool_call, tool_result
from gateway_consumer.simulator.profiles import Profile, Profiles, load_profiles
from gateway_consumer.simulator.sse import Stream, anthropic_stream, openai_stream
from streamgate.observability import Heartbeat
from streamgate.observability.metrics import ERRORS, EVENTS_IN, EVENTS_OUT, LATENCY

_PROFILES = web.AppKey("profiles", Profiles)
_OVERRIDES = web.AppKey("overrides", dict)
_STATS = web.AppKey("stats", Counter)
_RNG = web.AppKey("rng", random.Random)
C = "simulator"
_CALLS, _ANSWERS = EVENTS_IN.labels(C, "chat"), EVENTS_OUT.labels(C, "chat", "http")
_DRAWN = LATENCY.labels(C, "chat")


class SimulatedCall:
    """One simulated completion: what to answer and how long to take."""

    def __init__(self, app: web.Application, body: dict[str, Any], *, anthropic: bool = False) -> None:
        self.model = str(body.get("model", ""))
        self.profile: Profile = app[_OVERRIDES].get(self.model) or app[_PROFILES].for_model(self.model)
        rng: random.Random = app[_RNG]
        messages = body.get("messages") or []
        self.prompt = prompt_text(messages)
        if body.get("system"):
            self.prompt = prompt_text([{"content": body["system"]}]) + "\n" + self.prompt
        self.prompt_tokens = max(len(self.prompt) // 4, 1)
        p = self.profile
        self.completion_tokens = rng.randint(p.completion_tokens_min, max(p.completion_tokens_max,
                                                                         p.completion_tokens_min))
        if body.get("max_tokens"):
            self.completion_tokens = min(self.completion_tokens, int(body["max_tokens"]))
        fmt = body.get("response_format")
        json_mode = isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")
        schema = (fmt.get("json_schema") or {}).get("schema") if json_mode and isinstance(fmt, dict) else None
        result = tool_result(messages)
        self.text = answer_text(self.prompt, self.model, self.completion_tokens, json_mode,
                                json_mode and rng.random() < p.invalid_json_rate, schema)
        if result is not None and not json_mode:
            self.text = f"tool said: {result}"
        self.tool = tool_call(body, self.prompt, anthropic=anthropic)
        if self.tool is not None:
            self.text = ""
        self.latency_s = p.latency_s(rng)
        roll = rng.random()
        self.failure_kind = ("hang" if roll < p.hang_rate else
                             "rate_limit" if roll < p.hang_rate + p.rate_limit_rate else
                             "error" if roll < p.hang_rate + p.rate_limit_rate + p.error_rate else None)
        app[_STATS][(self.model, self.failure_kind or "ok")] += 1
        _CALLS.inc()
        _DRAWN.observe(self.latency_s)
        if self.failure_kind:
            ERRORS.labels(C, "chat", self.failure_kind).inc()
        else:
            _ANSWERS.inc()

    def failure(self) -> tuple[float, int, dict[str, Any], dict[str, str]] | None:
        """The failure this call draws, as (delay s, status, body, headers); None when it answers. A
        hang's delay is an hour: the client's timeout decides."""
        if self.failure_kind == "hang":
            return 3600.0, 504, {"error": {"type": "timeout", "message": "simulated hang"}}, {}
        if self.failure_kind == "rate_limit":
            return 0.0, 429, {"error": {"type": "rate_limit_exceeded", "message": "slow down"}}, {
                "Retry-After": f"{self.profile.retry_after_s:g}"}
        if self.failure_kind == "error":
            return self.latency_s * 0.2, 500, {"error": {"type": "server_error",
                                                         "message": "simulated failure"}}, {}
        return None

    async def fail_if_due(self) -> web.Response | None:
        if (failed := self.failure()) is None:
            return None
        delay, status, payload, headers = failed
        if delay:
            await asyncio.sleep(delay)
        return web.json_response(payload, status=status, headers=headers)

    def openai_completion(self) -> dict[str, Any]:
        """The non-streamed `/v1/chat/completions` answer."""
        tool = self.tool
        message: dict[str, Any] = {"role": "assistant", "content": self.text if tool is None else None}
        if tool is not None:
            message["tool_calls"] = [{"id": tool.id, "type": "function",
                                      "function": {"name": tool.name, "arguments": tool.arguments}}]
        return {"id": "chatcmpl-" + uuid.uuid4().hex[:12], "object": "chat.completion",
                "created": int(time.time()), "model": self.model,
                "choices": [{"index": 0, "message": message,
                             "finish_reason": "tool_calls" if tool is not None else "stop"}],
                "usage": self.openai_usage()}

    def openai_usage(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}

    def anthropic_message(self) -> dict[str, Any]:
        """The non-streamed `/v1/messages` answer."""
        tool = self.tool
        content: list[dict[str, Any]] = ([{"type": "text", "text": self.text}] if tool is None else
                                         [{"type": "tool_use", "id": tool.id, "name": tool.name,
                                           "input": json.loads(tool.arguments)}])
        return {"id": "msg_" + uuid.uuid4().hex[:12], "type": "message", "role": "assistant",
                "model": self.model, "content": content,
                "stop_reason": "tool_use" if tool is not None else "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": self.prompt_tokens, "output_tokens": self.completion_tokens}}

    def parts(self) -> list[str]:
        """What a stream sends: the text's pieces, or a tool call's arguments in pieces."""
        if self.tool is not None:
            args = self.tool.arguments
            third = max(len(args) // 3, 1)
            return [args[i:i + third] for i in range(0, len(args), third)]
        return pieces(self.text)


async def _json_body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except json.JSONDecodeError:
        return web.json_response({"error": {"type": "invalid_request_error", "message": "body is not JSON"}},
                                 status=400)
    if not isinstance(body, dict):
        return web.json_response({"error": {"type": "invalid_request_error", "message": "not an object"}},
                                 status=400)
    return body


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    call = SimulatedCall(request.app, body)
    if (failed := await call.fail_if_due()) is not None:
        return failed
    if not body.get("stream"):
        await asyncio.sleep(call.latency_s)
        return web.json_response(call.openai_completion())
    return await _write(request, openai_stream(call, body))


async def _write(request: web.Request, stream: Stream) -> web.StreamResponse:
    """`stream`'s events, each at its time (the fast path writes the same bytes on its own clock)."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    began = time.monotonic()
    for at, data in stream.timeline():
        await asyncio.sleep(max(0.0, began + at - time.monotonic()))
        await response.write(data)
    await response.write_eof()
    return response


async def messages(request: web.Request) -> web.StreamResponse:
    """Anthropic Messages API, plain or streamed (its SSE event types)."""
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    call = SimulatedCall(request.app, body, anthropic=True)
    if (failed := await call.fail_if_due()) is not None:
        return failed
    if not body.get("stream"):
        await asyncio.sleep(call.latency_s)
        return web.json_response(call.anthropic_message())
    return await _write(request, anthropic_stream(call))


async def put_profile(request: web.Request) -> web.Response:
    model = request.match_info["model"]
    base = request.app[_OVERRIDES].get(model) or request.app[_PROFILES].for_model(model)
    try:
        request.app[_OVERRIDES][model] = base.merged(await request.json())
    except (ValueError, TypeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(request.app[_OVERRIDES][model].model_dump())


async def delete_profile(request: web.Request) -> web.Response:
    request.app[_OVERRIDES].pop(request.match_info["model"], None)
    return web.json_response({"reset": request.match_info["model"]})


async def stats(request: web.Request) -> web.Response:
    out: dict[str, dict[str, int]] = {}
    for (model, outcome), n in request.app[_STATS].items():
        out.setdefault(model, {})[outcome] = n
    return web.json_response(out)


async def health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(profiles: Profiles, seed: int | None = None) -> web.Application:
    app = web.Application(client_max_size=32 * 1024 * 1024)
    app[_PROFILES], app[_OVERRIDES], app[_STATS] = profiles, {}, Counter()
    app[_RNG] = random.Random(seed)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/messages", messages)
    app.router.add_put("/admin/profiles/{model}", put_profile)
    app.router.add_delete("/admin/profiles/{model}", delete_profile)
    app.router.add_get("/admin/stats", stats)
    app.router.add_get("/health", health)
    return app


def serve(host: str, port: int, profiles_path: Path, seed: int | None = None,
          heartbeat: Heartbeat | None = None) -> None:
    app = create_app(load_profiles(profiles_path), seed)
    if heartbeat is not None:
        app.cleanup_ctx.append(_beating(heartbeat))
    from gateway_consumer.simulator import fast_path  # it builds on this module

    # plain completions on a bare protocol, the rest through the app (fast_path.py says why); a backlog
    # of 4096: a gateway opens hundreds of connections at once when traffic starts, and with the default
    # (128) the kernel drops the excess SYNs and those clients wait seconds for a retransmit
    fast_path.run(app, host, port, ready=lambda msg: print(f"simulator: {msg}", flush=True))


def _beating(heartbeat: Heartbeat) -> Any:
    """A task that beats while the event loop serving requests runs (what /healthz reports)."""

    async def context(_: web.Application) -> Any:
        async def beat() -> None:
            while True:
                heartbeat.beat()
                await asyncio.sleep(1.0)

        task = asyncio.create_task(beat())
        yield
        task.cancel()

    return context
