"""The front door: OpenAI- and Anthropic-compatible HTTP over the stream.

Every call becomes a `Request` event on `requests` and passes the same request path as any Kafka producer
(validation, guardrails, budgets, routing); its answer comes back through Kafka on this instance's own
reply partition (`streamgate.client.replies`): the final Response on `replies` as soon as the gateway has
it (or once its transaction commits, with `client.answer_before_commit: false`), and a streamed answer's
pieces on `replies.chunks` as the provider sends them.

The key is checked here first, against the key ring the request path also follows, so an unknown key is
answered 401 without touching Kafka; the request path authenticates every request again.

Each request carries a deadline: `frontdoor.timeout_s` after it arrives, or sooner when the caller's SDK
says it gives up sooner (`x-stainless-read-timeout`, sent by the official OpenAI and Anthropic SDKs). No
provider attempt starts after it, so a caller who was answered 504 (or hung up) is not billed later.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from frontdoor import anthropic_wire, openai_wire
from frontdoor.draft import Draft
from frontdoor.exceptions import ApiError, invalid, unauthenticated
from frontdoor.outcomes import error_for
from frontdoor.streaming import AnthropicStream, OpenAIStream, SseStream
from shared.policy.config import GatewayPolicy
from streamgate.client import AsyncRequestProducer, DeliveryError, InvalidRequestError, build_request
from streamgate.client.replies import AsyncWaiter, ReplyEvent, ReplyReader
from streamgate.config import Settings
from streamgate.observability.metrics import ERRORS, EVENTS_IN, LATENCY

log = logging.getLogger("streamgate.frontdoor")
C = "frontdoor"


class Caller(Protocol):
    """Who a key belongs to (shared.identity.KeyIdentity has this shape)."""

    @property
    def key_id(self) -> str: ...
    @property
    def team(self) -> str: ...
    @property
    def project(self) -> str: ...
    def allows_model(self, model: str) -> bool: ...


class Keys(Protocol):
    """Authenticates a raw key without a network call (shared.identity.KeyRing); raises on refusal."""

    def authenticate_raw(self, raw_key: str, now_ms: int | None = None) -> Caller: ...


@dataclass(frozen=True)
class Wire:
    """One API's ways: parse a body, render an answer, an error, a stream."""

    name: str
    parse: Callable[[Any], Draft]
    answer: Callable[[dict[str, Any], str], dict[str, Any]]
    error_body: Callable[[ApiError], dict[str, Any]]
    stream: type[SseStream]
    key_headers: tuple[str, ...]


OPENAI = Wire("openai", openai_wire.parse_chat, openai_wire.completion, openai_wire.error_body, OpenAIStream,
              ("authorization",))
ANTHROPIC = Wire("anthropic", anthropic_wire.parse_messages, anthropic_wire.message,
                 anthropic_wire.error_body, AnthropicStream, ("x-api-key", "authorization"))


def raw_key(request: web.Request, wire: Wire) -> str:
    for header in wire.key_headers:
        value = request.headers.get(header, "").strip()
        if header == "authorization":
            scheme, _, token = value.partition(" ")
            value = token.strip() if scheme.lower() == "bearer" else ""
        if value:
            return value
    raise unauthenticated()


def still_queued(request_id: str, timeout_s: float) -> ApiError:
    """The 504 for a request the gateway did not answer in time. No provider attempt starts for it after
    now (its deadline), but one under way may still finish and be billed, and a gateway this far behind
    would keep a resent call waiting as long: the SDKs are told not to retry (the official `openai` SDK
    otherwise resends a 504 twice)."""
    return ApiError(504, "timeout", f"no answer to {request_id} within {timeout_s:g} s; the gateway "
                    "starts no provider attempt for it after this, but one already under way may still "
                    "complete (its answer goes to `responses`)", code="timeout", retry=False)


#: Sent by the official OpenAI and Anthropic SDKs: how long (s) they wait for an answer before giving up.
SDK_TIMEOUT_HEADER = "x-stainless-read-timeout"


def deadline_s(request: web.Request, timeout_s: float) -> float:
    """How long this caller waits: the front door's timeout, or the SDK's own when it says it is shorter."""
    try:
        sdk = float(request.headers.get(SDK_TIMEOUT_HEADER, ""))
    except ValueError:
        return timeout_s
    return min(timeout_s, sdk) if sdk > 0 else timeout_s


def error_response(wire: Wire, error: ApiError, request_id: str | None = None) -> web.Response:
    headers = {"x-request-id": request_id} if request_id else {}
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(error.retry_after_s)
    if error.retry is not None:
        headers["x-should-retry"] = "true" if error.retry else "false"
    return web.json_response(wire.error_body(error), status=error.status, headers=headers)


class FrontDoor:
    """One front-door instance: an aiohttp app, a producer of requests, a reader of its reply partition."""

    def __init__(self, settings: Settings, keys: Keys, policy: Callable[[], GatewayPolicy]) -> None:
        self.settings, self.keys, self.policy = settings, keys, policy
        self.replies: ReplyReader | None = None
        self.producer: AsyncRequestProducer | None = None
        self.started = time.time()

    # -- lifecycle -------------------------------------------------------------------------------------
    async def start(self) -> None:
        reader = ReplyReader(self.settings, self.settings.frontdoor.reply_partition,
                             client_id="streamgate-frontdoor", role="frontdoor")
        self.replies = await asyncio.to_thread(reader.start)
        self.producer = AsyncRequestProducer(self.settings, client_id="streamgate-frontdoor",
                                             extra_config={"linger.ms": 0}, role="frontdoor")

    async def close(self) -> None:
        if self.producer is not None:
            await self.producer.close()
        if self.replies is not None:
            await asyncio.to_thread(self.replies.close)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.frontdoor.max_body_bytes)
        app.router.add_post("/v1/chat/completions", self._endpoint(OPENAI))
        app.router.add_post("/v1/messages", self._endpoint(ANTHROPIC))
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics)

        async def on_startup(_: web.Application) -> None:
            await self.start()

        async def on_cleanup(_: web.Application) -> None:
            await self.close()

        app.on_startup.append(on_startup)
        app.on_cleanup.append(on_cleanup)
        return app

    # -- endpoints -------------------------------------------------------------------------------------
    def _endpoint(self, wire: Wire) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            began = time.perf_counter()
            EVENTS_IN.labels(C, wire.name).inc()
            try:
                return await self._call(request, wire)
            except ApiError as error:
                ERRORS.labels(C, wire.name, str(error.status)).inc()
                return error_response(wire, error)
            except DeliveryError as exc:  # the broker did not take the request: nothing was sent
                log.error("request not delivered: %s", exc)
                ERRORS.labels(C, wire.name, "503").inc()
                return error_response(wire, ApiError(503, "unavailable", "the gateway could not queue the "
                                                     "request; retry", code="unavailable", retry_after_s=1))
            except (asyncio.CancelledError, ConnectionResetError):
                raise  # the caller hung up: nothing to answer
            except Exception:
                log.exception("unexpected error on %s", request.path)
                ERRORS.labels(C, wire.name, "500").inc()
                internal = ApiError(500, "provider", "internal error", code="internal_error")
                return error_response(wire, internal)
            finally:
                LATENCY.labels(C, wire.name).observe(time.perf_counter() - began)
        return handle

    async def _call(self, request: web.Request, wire: Wire) -> web.StreamResponse:
        key = raw_key(request, wire)
        caller = self._authenticate(key)
        draft = wire.parse(await _json(request))
        if not caller.allows_model(draft.model):
            raise ApiError(403, "permission", f"this API key may not use model {draft.model!r}",
                           code="model_not_allowed")
        event = self._request(draft, caller, key).with_timeout(
            deadline_s(request, self.settings.frontdoor.timeout_s))
        assert self.replies is not None and self.producer is not None
        waiter = AsyncWaiter(asyncio.get_running_loop())
        self.replies.expect(event.request_id, waiter)
        try:  # whatever happens (answer, timeout, the caller hanging up), the waiter goes
            await self.producer.send(event)
            if draft.stream:
                return await self._stream(request, wire, draft, event.request_id, waiter)
            final = await self._final(waiter, event.request_id)
            if final["status"] != "ok":
                return error_response(wire, error_for(final), event.request_id)
            return web.json_response(wire.answer(final, draft.model),
                                     headers={"x-request-id": event.request_id})
        finally:
            self.replies.forget(event.request_id)

    def _authenticate(self, key: str) -> Caller:
        try:
            return self.keys.authenticate_raw(key)
        except Exception as exc:  # every refusal is the same 401: never say whether a key exists
            if isinstance(exc, ApiError):
                raise
            log.info("refused a key: %s", type(exc).__name__)
            raise unauthenticated() from None

    def _request(self, draft: Draft, caller: Caller, key: str) -> Any:
        assert self.replies is not None
        try:
            return build_request(
                team=caller.team, project=caller.project, model=draft.model, api_key=key,
                messages=draft.messages, params=draft.params, user_id=draft.user, metadata=draft.metadata,
                reply_partition=self.replies.partition, tags={"via": "frontdoor"})
        except InvalidRequestError as exc:
            raise invalid(_first_error(str(exc))) from None

    async def _final(self, waiter: AsyncWaiter, request_id: str) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self.settings.frontdoor.timeout_s):
                while (event := await waiter.events.get()).kind != "final":
                    pass
        except TimeoutError:
            raise still_queued(request_id, self.settings.frontdoor.timeout_s) from None
        return event.record

    async def _stream(self, request: web.Request, wire: Wire, draft: Draft, request_id: str,
                      waiter: AsyncWaiter) -> web.StreamResponse:
        """Headers wait for the first piece (or the final answer), so a refusal is still an HTTP error."""
        timeout = self.settings.frontdoor.timeout_s
        deadline = time.monotonic() + timeout
        first = await self._next(waiter, deadline, request_id)
        if first.kind == "final" and first.record["status"] != "ok":
            return error_response(wire, error_for(first.record), request_id)
        stream = wire.stream(request_id, draft)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache", "x-request-id": request_id})
        await response.prepare(request)
        event = first
        while True:
            frames = stream.final(event.record) if event.kind == "final" else stream.piece(event.record)
            for frame in frames:
                await response.write(frame)
            if event.kind == "final":
                break
            try:
                event = await self._next(waiter, deadline, request_id)
            except ApiError as error:  # the status line is sent: the timeout ends the stream in-band
                ERRORS.labels(C, wire.name, str(error.status)).inc()
                for frame in stream.error(error):
                    await response.write(frame)
                break
        await response.write_eof()
        return response

    async def _next(self, waiter: AsyncWaiter, deadline: float, request_id: str) -> ReplyEvent:
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                return await waiter.events.get()
        except TimeoutError:
            raise still_queued(request_id, self.settings.frontdoor.timeout_s) from None

    async def models(self, request: web.Request) -> web.Response:
        """The models and route aliases this key may use."""
        try:
            caller = self._authenticate(raw_key(request, OPENAI))
        except ApiError as error:
            return error_response(OPENAI, error)
        policy = self.policy()
        team = policy.teams.get(caller.team)
        names = sorted(name for name in policy.routing.routes
                       if team is not None and team.may_use_model(name) and caller.allows_model(name))
        created = int(self.started)
        return web.json_response({"object": "list", "data": [
            {"id": name, "object": "model", "created": created, "owned_by": "streamgate"} for name in names]})

    async def healthz(self, _: web.Request) -> web.Response:
        reader = self.replies
        ok = reader is not None and reader.alive
        body = {"component": C, "ok": ok, "waiting": reader.waiting if reader else 0,
                "reply_partition": reader.partition if reader else None}
        return web.json_response(body, status=200 if ok else 503)

    async def metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _json(request: web.Request) -> Any:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(400, "too_large", "the request body is larger than the front door accepts "
                       "(frontdoor.max_body_bytes)", code="request_too_large") from None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise invalid(f"the request body is not valid JSON: {exc}", code="invalid_json") from None


def _first_error(text: str) -> str:
    """pydantic's multi-line message, shortened to what a caller can act on."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "; ".join(lines[1:3]) if len(lines) > 1 else text
