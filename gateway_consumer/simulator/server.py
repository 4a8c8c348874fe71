"""The simulator's HTTP server (aiohttp): `/v1/chat/completions` (JSON or SSE), `/v1/messages` and admin.

Answers are deterministic in their text (a function of the prompt) and random in their timing and
failures (per the model's profile), so tests can assert on content while exercising the error paths.
A prompt containing `ECHO:` gets the rest of that message back verbatim, which lets tests put chosen
text (say, PII) into an answer.
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

from gateway_consumer.simulator.profiles import Profile, Profiles, load_profiles
from streamgate.observability import Heartbeat
from streamgate.observability.metrics import ERRORS, EVENTS_IN, EVENTS_OUT, LATENCY

_WORDS = ("stream", "gateway", "token", "route", "model", "latency", "budget", "cache", "policy", "event")
_PROFILES = web.AppKey("profiles", Profiles)
_OVERRIDES = web.AppKey("overrides", dict)
_STATS = web.AppKey("stats", Counter)
_RNG = web.AppKey("rng", random.Random)
C = "simulator"
_CALLS, _ANSWERS = EVENTS_IN.labels(C, "chat"), EVENTS_OUT.labels(C, "chat", "http")
_DRAWN = LATENCY.labels(C, "chat")


def _prompt_text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("content", "")) for m in messages)


def _answer_text(prompt: str, model: str, tokens: int, json_mode: bool, broken_json: bool) -> str:
    if "ECHO:" in prompt:
        text = prompt.split("ECHO:", 1)[1].strip()
    else:
        seed = sum(map(ord, prompt[:200]))
        text = " ".join(_WORDS[(seed + i * 7) % len(_WORDS)] for i in range(max(tokens - 1, 1)))
    if json_mode:
        return '{"answer": "' + text[:40] if broken_json else json.dumps({"answer": text, "model": model})
    return text


class _Call:
    """One simulated completion: what to answer and how long to take."""

    def __init__(self, app: web.Application, body: dict[str, Any]) -> None:
        self.model = str(body.get("model", ""))
        self.profile: Profile = app[_OVERRIDES].get(self.model) or app[_PROFILES].for_model(self.model)
        rng: random.Random = app[_RNG]
        self.prompt = _prompt_text(body.get("messages") or [])
        if isinstance(body.get("system"), str):
            self.prompt = body["system"] + "\n" + self.prompt
        self.prompt_tokens = max(len(self.prompt) // 4, 1)
        p = self.profile
        self.completion_tokens = rng.randint(p.completion_tokens_min, max(p.completion_tokens_max,
                                                                         p.completion_tokens_min))
        if body.get("max_tokens"):
            self.completion_tokens = min(self.completion_tokens, int(body["max_tokens"]))
        fmt = body.get("response_format")
        json_mode = isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")
        self.text = _answer_text(self.prompt, self.model, self.completion_tokens, json_mode,
                                 json_mode and rng.random() < p.invalid_json_rate)
        self.latency_s = p.latency_s(rng)
        roll = rng.random()
        self.failure = ("hang" if roll < p.hang_rate else
                        "rate_limit" if roll < p.hang_rate + p.rate_limit_rate else
                        "error" if roll < p.hang_rate + p.rate_limit_rate + p.error_rate else None)
        app[_STATS][(self.model, self.failure or "ok")] += 1
        _CALLS.inc()
        _DRAWN.observe(self.latency_s)
        if self.failure:
            ERRORS.labels(C, "chat", self.failure).inc()
        else:
            _ANSWERS.inc()

    async def fail_if_due(self) -> web.Response | None:
        if self.failure == "hang":
            await asyncio.sleep(3600)
        if self.failure == "rate_limit":
            return web.json_response({"error": {"type": "rate_limit_exceeded", "message": "slow down"}},
                                     status=429, headers={"Retry-After": f"{self.profile.retry_after_s:g}"})
        if self.failure == "error":
            await asyncio.sleep(self.latency_s * 0.2)
            return web.json_response({"error": {"type": "server_error", "message": "simulated failure"}},
                                     status=500)
        return None


async def chat_completions(request: web.Request) -> web.StreamResponse:
    try:
        body = await request.json()
    except json.JSONDecodeError:
        return web.json_response({"error": {"type": "invalid_request_error", "message": "body is not JSON"}},
                                 status=400)
    call = _Call(request.app, body)
    if (failed := await call.fail_if_due()) is not None:
        return failed
    usage = {"prompt_tokens": call.prompt_tokens, "completion_tokens": call.completion_tokens,
             "total_tokens": call.prompt_tokens + call.completion_tokens}
    ident, created = "chatcmpl-" + uuid.uuid4().hex[:12], int(time.time())
    if not body.get("stream"):
        await asyncio.sleep(call.latency_s)
        return web.json_response({
            "id": ident, "object": "chat.completion", "created": created, "model": call.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": call.text},
                         "finish_reason": "stop"}], "usage": usage})
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    await asyncio.sleep(call.latency_s * call.profile.ttft_share)
    words = call.text.split(" ")
    chunks = [" ".join(words[i:i + 8]) + (" " if i + 8 < len(words) else "") for i in range(0, len(words), 8)]
    pause = call.latency_s * (1 - call.profile.ttft_share) / max(len(chunks), 1)
    for i, piece in enumerate(chunks):
        if i:
            await asyncio.sleep(pause)
        delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
        await _sse(response, {"id": ident, "object": "chat.completion.chunk", "created": created,
                              "model": call.model, "choices": [{"index": 0, "delta": delta,
                                                                "finish_reason": None}]})
    head = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": call.model}
    await _sse(response, head | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        await _sse(response, {"id": ident, "object": "chat.completion.chunk", "created": created,
                              "model": call.model, "choices": [], "usage": usage})
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def _sse(response: web.StreamResponse, payload: dict[str, Any]) -> None:
    await response.write(b"data: " + json.dumps(payload).encode() + b"\n\n")


async def messages(request: web.Request) -> web.Response:
    """Anthropic Messages API (non-streaming)."""
    body = await request.json()
    call = _Call(request.app, body)
    if (failed := await call.fail_if_due()) is not None:
        return failed
    await asyncio.sleep(call.latency_s)
    return web.json_response({
        "id": "msg_" + uuid.uuid4().hex[:12], "type": "message", "role": "assistant", "model": call.model,
        "content": [{"type": "text", "text": call.text}], "stop_reason": "end_turn",
        "usage": {"input_tokens": call.prompt_tokens, "output_tokens": call.completion_tokens}})


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
    # a gateway opens hundreds of connections at once when traffic starts: with the default backlog
    # (128) the kernel drops the excess SYNs and those clients wait seconds for a retransmit
    web.run_app(app, host=host, port=port, access_log=None, backlog=4096,
                print=lambda msg: print(f"simulator: {msg}", flush=True))


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
