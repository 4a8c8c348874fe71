"""A stream whose answer does not come before the door's timeout ends with an in-band error event.

Once the first piece is out, the status line (200) is sent and a 504 can no longer be: the front door
used to raise anyway, and aiohttp dropped the connection mid-body, which the SDKs report as a connection
error (4 of the 1M demo's 2,000 front-door calls). The real `FrontDoor._stream` is served over HTTP and
read by the official SDKs; its answer is one piece and then nothing (a gateway still busy with it).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from aiohttp import web

from frontdoor.server import ANTHROPIC, OPENAI, FrontDoor, Wire
from streamgate.client.replies import AsyncWaiter, ReplyEvent
from streamgate.config import Settings

TIMEOUT_S = 0.5
PIECE = "Hello"
USER: Any = [{"role": "user", "content": "hi"}]


def _piece() -> ReplyEvent:
    return ReplyEvent("chunk", {"request_id": "r-1", "dispatch_id": "d-1", "seq": 0, "delta": PIECE,
                                "tool_calls_json": None, "provider": "openai", "model": "gpt-4o-mini",
                                "created_at": 0})


class _Server:
    def __init__(self, settings: Settings) -> None:
        self.door = FrontDoor(settings, keys=None, policy=lambda: None)  # type: ignore[arg-type,return-value]
        self.loop = asyncio.new_event_loop()
        self.runner: web.AppRunner | None = None
        self.port = 0
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        assert ready.wait(10)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        def streamed(wire: Wire) -> Any:
            async def handler(request: web.Request) -> web.StreamResponse:
                waiter = AsyncWaiter(asyncio.get_running_loop())
                waiter.on_event(_piece())
                draft = wire.parse(await request.json())
                return await self.door._stream(request, wire, draft, "r-1", waiter)
            return handler

        app = web.Application()
        app.router.add_post("/v1/chat/completions", streamed(OPENAI))
        app.router.add_post("/v1/messages", streamed(ANTHROPIC))
        self.runner = runner = web.AppRunner(app)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        self.loop.run_forever()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    settings = Settings(state_dir=Path(tmp_path_factory.mktemp("door")))
    settings = settings.model_copy(update={"frontdoor": settings.frontdoor.model_copy(
        update={"timeout_s": TIMEOUT_S})})
    running = _Server(settings)
    yield running
    if running.runner is not None:
        asyncio.run_coroutine_threadsafe(running.runner.cleanup(), running.loop).result(10)
    running.loop.call_soon_threadsafe(running.loop.stop)


def test_the_openai_sdk_gets_the_timeout_as_an_error_event(server: _Server) -> None:
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key="sk-test", max_retries=0)
    texts: list[str] = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True):
            texts += [c.delta.content or "" for c in chunk.choices]
    assert not isinstance(raised.value, openai.APIConnectionError), "the connection was dropped"
    assert PIECE in texts and "no answer to r-1" in raised.value.message


def test_the_anthropic_sdk_gets_it_as_an_error_event(server: _Server) -> None:
    client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{server.port}", api_key="sk-test", max_retries=0)
    texts: list[str] = []
    with (pytest.raises(anthropic.APIError) as raised,
          client.messages.stream(model="claude-3-5-haiku", max_tokens=16, messages=USER) as stream):
        for text in stream.text_stream:
            texts.append(text)
    assert not isinstance(raised.value, anthropic.APIConnectionError), "the connection was dropped"
    assert texts == [PIECE] and "no answer to r-1" in str(raised.value)


def test_the_body_is_complete_sse_ending_in_the_error(server: _Server) -> None:
    body = httpx.post(f"http://127.0.0.1:{server.port}/v1/chat/completions", timeout=10,
                      json={"model": "gpt-4o-mini", "messages": USER, "stream": True}).text
    events = [e for e in body.split("\n\n") if e]
    assert events[-1].startswith('data: {"error":') and '"type":"timeout_error"' in events[-1]
