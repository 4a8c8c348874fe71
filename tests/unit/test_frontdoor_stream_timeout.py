"""A stream whose answer does not come before the door's timeout ends with an in-band error event.

Once the first piece is out, the status line (200) is sent and a 504 can no longer be: the front door
used to raise anyway, and aiohttp dropped the connection mid-body, which the SDKs report as a connection
error (4 of the 1M demo's 2,000 front-door calls). The real `FrontDoor._stream` is served over HTTP and
read by the official SDKs; its answer is one piece and then nothing (a gateway still busy with it).
"""

from __future__ import annotations

import asyncio
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
from tests.helpers.http_server import ThreadedServer

TIMEOUT_S = 0.5
PIECE = "Hello"
USER: Any = [{"role": "user", "content": "hi"}]


def _piece() -> ReplyEvent:
    return ReplyEvent("chunk", {"request_id": "r-1", "dispatch_id": "d-1", "seq": 0, "delta": PIECE,
                                "tool_calls_json": None, "provider": "openai", "model": "gpt-4o-mini",
                                "created_at": 0})


def _streamed(door: FrontDoor, wire: Wire) -> Any:
    """The real `_stream` of a request whose gateway sent one piece and nothing more."""
    async def handler(request: web.Request) -> web.StreamResponse:
        waiter = AsyncWaiter(asyncio.get_running_loop())
        waiter.on_event(_piece())
        draft = wire.parse(await request.json())
        return await door._stream(request, wire, draft, "r-1", waiter)
    return handler


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    settings = Settings(state_dir=Path(tmp_path_factory.mktemp("door")))
    settings = settings.model_copy(update={"frontdoor": settings.frontdoor.model_copy(
        update={"timeout_s": TIMEOUT_S})})
    door = FrontDoor(settings, keys=None, policy=lambda: None)  # type: ignore[arg-type,return-value]

    def routes(app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", _streamed(door, OPENAI))
        app.router.add_post("/v1/messages", _streamed(door, ANTHROPIC))

    running = ThreadedServer(routes)
    yield running
    running.stop()


def test_the_openai_sdk_gets_the_timeout_as_an_error_event(server: ThreadedServer) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test", max_retries=0)
    texts: list[str] = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True):
            texts += [c.delta.content or "" for c in chunk.choices]
    assert not isinstance(raised.value, openai.APIConnectionError), "the connection was dropped"
    assert PIECE in texts and "no answer to r-1" in raised.value.message


def test_the_anthropic_sdk_gets_it_as_an_error_event(server: ThreadedServer) -> None:
    client = anthropic.Anthropic(base_url=server.url, api_key="sk-test", max_retries=0)
    texts: list[str] = []
    with (pytest.raises(anthropic.APIError) as raised,
          client.messages.stream(model="claude-3-5-haiku", max_tokens=16, messages=USER) as stream):
        for text in stream.text_stream:
            texts.append(text)
    assert not isinstance(raised.value, anthropic.APIConnectionError), "the connection was dropped"
    assert texts == [PIECE] and "no answer to r-1" in str(raised.value)


def test_the_body_is_complete_sse_ending_in_the_error(server: ThreadedServer) -> None:
    body = httpx.post(server.url + "/v1/chat/completions", timeout=10,
                      json={"model": "gpt-4o-mini", "messages": USER, "stream": True}).text
    events = [e for e in body.split("\n\n") if e]
    assert events[-1].startswith('data: {"error":') and '"type":"timeout_error"' in events[-1]
