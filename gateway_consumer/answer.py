"""One routed request through its fallback chain: cache, breaker, attempts with retries, output checks.

Always ends in exactly one Response (ok or failed with a reason) and one Telemetry event per attempt
actually made, each priced from the catalog. Per-target `timeout_ms` is the latency threshold: an attempt
that passes it is abandoned and the request falls over to the next target. No attempt starts after the
caller's `deadline_at`: nobody waits for that answer any more, so it would only be paid for.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from gateway_consumer.cache import CachedAnswer, ExactCache, cache_key
from gateway_consumer.cache.semantic import BatchingEmbedder, SemanticCache, semantic_parts
from gateway_consumer.output_guard import check_output, json_problem
from gateway_consumer.providers import Provider, ProviderCall, ProviderError, ProviderReply
from gateway_consumer.providers.base import Delta, OnDelta
from gateway_consumer.providers.http1 import ProviderHTTP
from gateway_consumer.reliability import Breakers, CircuitBreaker, retry_delay_s
from gateway_consumer.streaming import ChunkSink, StreamingRedactor, as_deltas, stream_mode
from shared.deadline import DEADLINE_EXCEEDED, past_deadline_ms
from shared.guardrails.outcome import event_id
from shared.policy.config import GatewayPolicy
from shared.retrieval import chunk_refs
from streamgate.catalog import ModelCatalog, UnknownModelError
from streamgate.config import DispatchSettings


@dataclass
class Outcome:
    response: dict[str, Any]
    telemetry: list[dict[str, Any]]
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    #: Seconds spent waiting on providers (and backoff), to separate the gateway's own latency.
    provider_s: float = 0.0


@dataclass
class DispatchDeps:
    providers: dict[str, Provider]
    http: ProviderHTTP  # plain calls on a lean keep-alive pool, streams on aiohttp
    settings: DispatchSettings
    catalog: ModelCatalog
    policy: Callable[[], GatewayPolicy]
    breakers: Breakers
    cache: ExactCache | None
    limits: dict[str, asyncio.Semaphore]
    rng: random.Random = field(default_factory=random.Random)
    semantic: SemanticCache | None = None
    embedder: BatchingEmbedder | None = None


class _Attempts:
    """Builds the telemetry of one request's attempts."""

    def __init__(self, routed: dict[str, Any], deps: DispatchDeps) -> None:
        self.routed, self.deps = routed, deps
        self.events: list[dict[str, Any]] = []

    def record(self, index: int, target: dict[str, Any], started: float, reply: ProviderReply | None,
               error: ProviderError | None, cache_kind: str | None = None) -> dict[str, Any]:
        r, now = self.routed, time.time()
        prompt = reply.prompt_tokens if reply else 0
        completion = reply.completion_tokens if reply else 0
        cached = reply.cached_tokens if reply else 0
        cost, price_version = ((0, None) if cache_kind
                               else self._price(target, prompt, completion, cached, int(started * 1000)))
        event = {
            "event_id": event_id(), "request_id": r["request_id"], "trace_id": r["trace_id"],
            "attempt": len(self.events) + 1, "fallback_index": index, "team": r["team"],
            "project": r["project"], "api_key_id": r["api_key_id"], "user_id": r.get("user_id"),
            "provider": target["provider"],
            "model": target["model"], "region": target["region"],
            "status": "ok" if error is None else "error",
            "error_class": error.error_class if error else None,
            "http_status": (reply.http_status if reply else error.http_status if error else None),
            "stream": bool(r["params"].get("stream")), "prompt_tokens": prompt,
            "completion_tokens": completion,
            "cached_tokens": cached, "reasoning_tokens": reply.reasoning_tokens if reply else 0,
            "usage_source": reply.usage_source if reply else "none",
            "latency_ms": (now - started) * 1000, "ttft_ms": reply.ttft_ms if reply else None,
            "cache_hit": cache_kind is not None, "cache_kind": cache_kind, "cost_nanousd": cost,
            "price_version": price_version,
            "routing_config_version": r.get("routing_config_version"), "tags": r.get("tags") or {},
            "rag_chunks": chunk_refs(r.get("metadata")),
            "started_at": int(started * 1000), "ended_at": int(now * 1000),
        }
        self.events.append(event)
        return event

    def _price(self, target: dict[str, Any], prompt: int, completion: int, cached: int,
               at_ms: int) -> tuple[int, str | None]:
        """Priced at the prices in effect when the attempt started (a later change never reprices it)."""
        try:
            info = self.deps.catalog.get(f"{target['provider']}/{target['model']}")
        except UnknownModelError:
            try:
                info = self.deps.catalog.get(target["model"])
            except UnknownModelError:
                return 0, "unpriced"  # visible in telemetry, never a silent $0
        info = self.deps.catalog.priced_at(info, at_ms)
        return info.cost_nanousd(prompt, completion, cached), info.source or None


def _response(routed: dict[str, Any], status: str, started: float, *, reply: ProviderReply | None = None,
              target: dict[str, Any] | None = None, index: int | None = None, cache_kind: str | None = None,
              cost: int = 0, reason: str | None = None, message: str | None = None,
              content: str | None = None, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """`content` and `tool_calls`: the answer as the output guardrails let it through (redacted)."""
    now = time.time()
    calls = tool_calls if tool_calls is not None else reply.tool_calls if reply else None
    return {
        "request_id": routed["request_id"], "trace_id": routed["trace_id"], "team": routed["team"],
        "project": routed["project"], "api_key_id": routed["api_key_id"], "status": status,
        "reason_code": reason, "message": message, "content": content,
        "tool_calls_json": json.dumps(calls) if calls else None,
        "finish_reason": reply.finish_reason if reply else None,
        "provider": target["provider"] if target else None, "model": target["model"] if target else None,
        "target_index": index, "cache_hit": cache_kind is not None, "cache_kind": cache_kind,
        "usage": {"prompt_tokens": reply.prompt_tokens if reply else 0,
                  "completion_tokens": reply.completion_tokens if reply else 0,
                  "cached_tokens": reply.cached_tokens if reply else 0,
                  "reasoning_tokens": reply.reasoning_tokens if reply else 0},
        "cost_nanousd": cost, "latency_ms": (now - started) * 1000,
        "rag_chunks": chunk_refs(routed.get("metadata")),
        "created_at": routed["created_at"], "completed_at": int(now * 1000),
    }


def _expired(routed: dict[str, Any], started: float, late_ms: int, attempts: _Attempts) -> Outcome:
    made = len(attempts.events)
    message = (f"the caller's deadline passed {late_ms} ms ago, "
               + (f"after {made} attempt(s); no further attempt was started" if made
                  else "before dispatch; no provider was called"))
    return Outcome(_response(routed, "failed", started, cost=_cost(attempts), reason=DEADLINE_EXCEEDED,
                             message=message), attempts.events)


async def answer(routed: dict[str, Any], deps: DispatchDeps, stream: ChunkSink | None = None) -> Outcome:
    """`stream`: the caller waits for the pieces of this answer (`gateway_consumer/streaming.py`)."""
    started = time.time()
    attempts = _Attempts(routed, deps)
    if (late := past_deadline_ms(routed, int(started * 1000))) is not None:  # not even a cache hit
        return _expired(routed, started, late, attempts)
    key = cache_key(routed) if deps.cache is not None else None
    hit = deps.cache.get(key) if deps.cache is not None and key is not None else None
    kind, semantic = ("exact" if hit is not None else None), None
    if hit is None and (semantic := await _semantic_probe(routed, deps)) is not None:
        # Embedding waits for a batch; an identical request may have been answered meanwhile.
        if deps.cache is not None and key is not None and (hit := deps.cache.get(key)) is not None:
            kind = "exact"
        else:
            hit, kind = semantic.hit, "semantic"
    if hit is not None:
        target = {"provider": hit.provider, "model": hit.model, "region": hit.region}
        attempts.record(hit.target_index, target, started, hit.reply, None, cache_kind=kind)
        if stream is not None:  # one piece: the whole answer
            stream.send(hit.reply.content, as_deltas(hit.reply.tool_calls), target)
        return Outcome(_response(routed, "ok", started, reply=hit.reply, target=target,
                                 index=hit.target_index, cache_kind=kind, content=hit.reply.content),
                       attempts.events)
    run = _Run(routed, deps, attempts, started, key, semantic, stream)
    for index, target in enumerate(routed["targets"]):
        if (outcome := await run.try_target(index, target)) is not None:
            return outcome
    return Outcome(_response(routed, "failed", started, cost=_cost(attempts), reason="all_targets_failed",
                             message=run.last), attempts.events, run.verdicts, run.provider_s)


@dataclass
class _SemanticProbe:
    scope: str
    text: str
    vector: Any
    hit: CachedAnswer | None


async def _semantic_probe(routed: dict[str, Any], deps: DispatchDeps) -> _SemanticProbe | None:
    """Embed the last user message and look for a paraphrase the cross-encoder accepts (teams that opted
    in only)."""
    if deps.semantic is None or deps.embedder is None:
        return None
    if not deps.settings.cache.semantic.applies_to(routed["team"]):
        return None
    parts = semantic_parts(routed)
    if parts is None:
        return None
    scope, text = parts
    if len(text) > deps.settings.cache.semantic.max_chars:
        return None
    if (vector := await deps.embedder.embed(text)) is None:
        return None  # shed: the embedder is behind, so this request goes straight to dispatch
    hit = await deps.semantic.lookup(scope, text, vector, deps.embedder.offload)
    return _SemanticProbe(scope, text, vector, hit)


class _Run:
    """The state of one request's walk down its fallback chain."""

    def __init__(self, routed: dict[str, Any], deps: DispatchDeps, attempts: _Attempts, started: float,
                 key: str | None, semantic: _SemanticProbe | None, stream: ChunkSink | None = None) -> None:
        self.routed, self.deps, self.attempts, self.started, self.key = routed, deps, attempts, started, key
        self.semantic, self.stream = semantic, stream
        #: pieces go out as they arrive, redacted as they arrive, or (JSON formats) once, checked
        mode = stream_mode(routed, deps.policy()) if stream is not None else "raw"
        self.buffered = stream is not None and mode == "buffer"
        self.redactor = StreamingRedactor(deps.policy(), routed["team"]) if mode == "redact" else None
        self.provider_s = 0.0
        self.last = "no target was available"
        self.verdicts: list[dict[str, Any]] = []

    async def try_target(self, index: int, target: dict[str, Any]) -> Outcome | None:
        """Attempts on one target; an Outcome ends the request, None falls over to the next target."""
        breaker = self.deps.breakers.get(target["provider"], target["model"])
        adapter = self.deps.providers.get(target["provider"])
        if adapter is None:
            self.last = f"provider {target['provider']!r} is not configured for dispatch"
            return None
        if not breaker.allow():
            self.last = f"circuit open for {target['provider']}/{target['model']}"
            return None
        json_retry_used, retry = False, 0
        while True:
            t0 = time.time()
            if (late := past_deadline_ms(self.routed, int(t0 * 1000))) is not None:
                return self._expired(late)
            try:
                reply = await _call(adapter, target, self.routed, self.deps, self._on_delta(target))
            except DeadlinePassedError as passed:  # while it waited for a free slot to the provider
                return self._expired(passed.late_ms)
            except ProviderError as error:
                self.provider_s += time.time() - t0
                breaker.record(False)
                self.attempts.record(index, target, t0, None, error)
                self.last = f"{target['provider']}/{target['model']}: {error}"
                if self.stream is not None and self.stream.sent:  # the caller saw part of this answer
                    return self._fail(index, target, "stream_interrupted", self.last)
                retry += 1
                delay = await self._backoff(error, retry, breaker)
                if delay is None:
                    return None
                continue
            self.provider_s += time.time() - t0
            breaker.record(True)
            event = self.attempts.record(index, target, t0, reply, None)
            problem = None if reply.tool_calls else json_problem(reply.content, self.routed["params"])
            if problem is None:
                return self._finish(index, target, reply)
            event["status"], event["error_class"] = "error", "invalid_json"
            if json_retry_used:
                return self._fail(index, target, "invalid_json", f"the answer {problem} (after one retry)")
            json_retry_used = True

    def _expired(self, late_ms: int) -> Outcome:
        outcome = _expired(self.routed, self.started, late_ms, self.attempts)
        outcome.verdicts, outcome.provider_s = self.verdicts, self.provider_s
        return outcome

    def _on_delta(self, target: dict[str, Any]) -> OnDelta | None:
        stream = self.stream
        if stream is None or self.buffered:
            return None

        redactor = self.redactor

        def on_delta(delta: Delta) -> None:
            if redactor is None:
                if delta.text or delta.tool_calls:
                    stream.send(delta.text, delta.tool_calls, target)
                return
            # tool-call arguments arrive in fragments that no scanner can judge one by one: they are
            # held, and go out whole once the output check redacted them (`_finish`)
            if text := redactor.feed(delta.text):
                stream.send(text, None, target)

        return on_delta

    async def _backoff(self, error: ProviderError, retry: int, breaker: CircuitBreaker) -> float | None:
        """Wait before retrying the same target; None when it should not be retried."""
        settings = self.deps.settings.retry
        if not error.retryable or retry >= settings.max_attempts:
            return None
        delay = retry_delay_s(retry, settings, error.retry_after_s, self.deps.rng)
        if delay is None or not breaker.allow():
            return None
        await asyncio.sleep(delay)
        self.provider_s += delay
        return delay

    def _finish(self, index: int, target: dict[str, Any], reply: ProviderReply) -> Outcome:
        checked = check_output(self.routed, reply.content, self.deps.policy(), reply.tool_calls)
        self.verdicts += checked.verdicts
        if checked.failure is not None:
            return self._fail(index, target, checked.failure, checked.message or "")
        if self.stream is not None and self.buffered:  # checked: now the caller may see it, at once
            self.stream.send(checked.content, as_deltas(checked.tool_calls), target)
        elif self.stream is not None:
            rest, calls = self._held_back(checked.content), as_deltas(checked.tool_calls)
            if rest or (calls and self.redactor is not None):
                self.stream.send(rest, calls if self.redactor is not None else None, target)
        # the caches keep the answer as it was let through: a hit is served without another check
        reply = replace(reply, content=checked.content, tool_calls=checked.tool_calls)
        if self.deps.cache is not None and self.key is not None:
            self.deps.cache.put(self.key, reply, target["provider"], target["model"], target["region"], index)
        if self.semantic is not None and self.deps.semantic is not None:
            ttl = self.deps.settings.cache.ttl_s
            answer = CachedAnswer(reply, target["provider"], target["model"], target["region"], index,
                                  time.monotonic() + ttl)
            self.deps.semantic.add(self.semantic.scope, self.semantic.text, self.semantic.vector, answer)
        return Outcome(_response(self.routed, "ok", self.started, reply=reply, target=target, index=index,
                                 cost=_cost(self.attempts), content=checked.content,
                                 tool_calls=checked.tool_calls),
                       self.attempts.events, self.verdicts, self.provider_s)

    def _held_back(self, checked: str) -> str:
        """The redacted stream's tail, held back until the whole answer was checked."""
        return "" if self.redactor is None else self.redactor.rest(checked)

    def _fail(self, index: int, target: dict[str, Any], reason: str, message: str) -> Outcome:
        return Outcome(_response(self.routed, "failed", self.started, target=target, index=index,
                                 cost=_cost(self.attempts), reason=reason, message=message),
                       self.attempts.events, self.verdicts, self.provider_s)


def _cost(attempts: _Attempts) -> int:
    return sum(e["cost_nanousd"] for e in attempts.events)


class DeadlinePassedError(Exception):
    """The caller's deadline passed while the attempt waited for a slot to its provider."""

    def __init__(self, late_ms: int) -> None:
        super().__init__(f"deadline passed {late_ms} ms ago")
        self.late_ms = late_ms


async def _call(adapter: Provider, target: dict[str, Any], routed: dict[str, Any],
                deps: DispatchDeps, on_delta: OnDelta | None = None) -> ProviderReply:
    limit = deps.limits.get(target["provider"])
    call = ProviderCall(target["model"], routed["messages"], routed["params"], on_delta)
    try:
        async with asyncio.timeout(target["timeout_ms"] / 1000):
            if limit is None:
                return await adapter.complete(deps.http, call)
            async with limit:  # at `max_concurrency` calls may queue here: the deadline is checked again
                if (late := past_deadline_ms(routed)) is not None:
                    raise DeadlinePassedError(late)
                return await adapter.complete(deps.http, call)
    except TimeoutError as exc:
        raise ProviderError("timeout", f"no answer within {target['timeout_ms']} ms") from exc
