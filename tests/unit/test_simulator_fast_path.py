"""The simulator's fast path (gateway_consumer/simulator/fast_path.py) over real sockets: completions,
plain and streamed, answered on the bare protocol, everything else through the aiohttp app, one
connection at a time."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gateway_consumer.simulator import fast_path
from gateway_consumer.simulator.profiles import Profile, Profiles
from gateway_consumer.simulator.server import create_app

CHAT = {"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "ECHO: hello there"}]}


@pytest.mark.parametrize(("raw", "expected"), [
    (b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", (b"POST", b"/v1/chat/completions",
                                                                           b"{}", False)),
    (b"POST /v1/messages?beta=1 HTTP/1.1\r\ncontent-length: 0\r\nConnection: close\r\n\r\n",
     (b"POST", b"/v1/messages", b"", True)),
    (b"GET /health HTTP/1.0\r\n\r\n", (b"GET", b"/health", b"", True)),
])
def test_parse_a_complete_request(raw: bytes, expected: tuple[bytes, bytes, bytes, bool]) -> None:
    request, used = fast_path.parse(bytearray(raw + b"GET /next"))
    assert request is not None and used == len(raw)
    assert (request.method, request.path, request.body, request.close) == expected


@pytest.mark.parametrize(("raw", "used"), [
    (b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 10\r\n\r\n{}", 0),  # body still arriving
    (b"POST /v1/chat/completions HTTP/1.1\r\nContent-Len", 0),  # headers still arriving
    (b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", -1),
    (b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: x\r\n\r\n", -1),
    (b"\x16\x03\x01 garbage\r\n\r\n", -1),
])
def test_parse_incomplete_or_not_taken(raw: bytes, used: int) -> None:
    assert fast_path.parse(bytearray(raw)) == (None, used)


@pytest.fixture
async def urls() -> AsyncIterator[tuple[str, str]]:
    """The fast path's address and the aiohttp app's own (behind it)."""
    profiles = Profiles(default=Profile(median_ms=0, p99_ms=0), models={
        "slow": Profile(median_ms=60, p99_ms=60), "broken": Profile(median_ms=0, p99_ms=0, error_rate=1.0)})
    runner, server = await fast_path.start(create_app(profiles, seed=1), "127.0.0.1", 0)
    try:
        yield (f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}",
               f"http://127.0.0.1:{runner.addresses[0][1]}")
    finally:
        server.close()
        await runner.cleanup()


@pytest.fixture
def url(urls: tuple[str, str]) -> str:
    return urls[0]


async def test_plain_calls_of_both_apis_and_the_app_s_routes_on_one_port(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/v1/chat/completions", json=CHAT) as r:
            body = await r.json()
            assert r.status == 200 and r.headers["Content-Type"].startswith("application/json")
        assert body["choices"][0]["message"]["content"] == "hello there"
        usage = body["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        async with session.post(f"{url}/v1/messages", json=CHAT) as r:
            message = await r.json()
        assert message["type"] == "message" and message["content"][0]["text"] == "hello there"
        async with session.get(f"{url}/admin/stats") as r:  # the app's own route, piped
            assert (await r.json())["m"]["ok"] == 2


def _openai_text(sse: str) -> str:
    pieces = [json.loads(line[6:]) for line in sse.splitlines() if line.startswith("data: {")]
    return "".join(p["choices"][0]["delta"].get("content", "") for p in pieces if p["choices"])


async def test_streams_of_both_apis_are_answered_here_as_the_app_answers_them(
        urls: tuple[str, str]) -> None:
    url, app_url = urls
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/v1/chat/completions", json=CHAT | {
                "stream": True, "stream_options": {"include_usage": True}}) as r:
            text = (await r.read()).decode()
            assert r.headers["Content-Type"] == "text/event-stream"
            assert r.headers["Transfer-Encoding"] == "chunked"
        assert _openai_text(text) == "hello there"
        assert '"usage": {"prompt_tokens"' in text and text.rstrip().endswith("data: [DONE]")
        async with session.post(f"{url}/v1/messages", json=CHAT | {"stream": True}) as r:
            lines = (await r.read()).decode().splitlines()
        events = [line[7:] for line in lines if line.startswith("event: ")]
        assert events == ["message_start", "ping", "content_block_start", "content_block_delta",
                          "content_block_stop", "message_delta", "message_stop"]
        # the same stream from the app itself (its own port): the same events
        async with session.post(f"{app_url}/v1/chat/completions",
                                json=CHAT | {"stream": True}) as r:
            assert _openai_text((await r.read()).decode()) == "hello there"
        async with session.get(f"{url}/admin/stats") as r:
            assert (await r.json())["m"]["ok"] == 3


async def test_a_stream_keeps_its_pace_and_the_connection_then_serves_the_next_call(url: str) -> None:
    slow = CHAT | {"model": "slow", "stream": True,
                   "messages": [{"role": "user",
                                  "content": "ECHO: one two three four five six seven eight nine ten"}]}
    began = time.monotonic()
    data = await _raw(url, _request(slow) + _request(CHAT, close=True))
    # two pieces: at the time to first token (30% of 60 ms) and one pause (70% / 2) after it
    assert time.monotonic() - began >= 0.038
    streamed, plain = data.split(b"HTTP/1.1 200 OK")[1:]
    assert b"Transfer-Encoding: chunked" in streamed and streamed.endswith(b"\r\n0\r\n\r\n")
    body = streamed.split(b"\r\n\r\n", 1)[1]
    sse = b""
    while True:  # undo the chunking
        size, _, rest = body.partition(b"\r\n")
        if int(size, 16) == 0:
            break
        sse, body = sse + rest[:int(size, 16)], rest[int(size, 16) + 2:]
    assert _openai_text(sse.decode()) == "one two three four five six seven eight nine ten"
    assert b'"hello there"' in plain and b"Connection: close" in plain


async def test_an_override_set_through_the_app_applies_to_the_fast_path(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.put(f"{url}/admin/profiles/m", json={"rate_limit_rate": 1.0}) as r:
            assert r.status == 200
        async with aiohttp.ClientSession() as fresh, fresh.post(f"{url}/v1/chat/completions", json=CHAT) as r:
            assert r.status == 429 and r.headers["Retry-After"] == "1"
            assert (await r.json())["error"]["type"] == "rate_limit_exceeded"
        async with session.post(f"{url}/v1/chat/completions", json=CHAT | {"model": "broken"}) as r:
            assert r.status == 500


async def test_bad_json_gets_the_app_s_400(url: str) -> None:
    async with aiohttp.ClientSession() as session, session.post(
            f"{url}/v1/chat/completions", data=b"{not json",
            headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400
        assert (await r.json())["error"]["message"] == "body is not JSON"


async def _raw(url: str, payload: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(payload)
    data = await asyncio.wait_for(reader.read(), 10)  # until the server closes
    writer.close()
    return data


def _request(body: dict[str, Any], close: bool = False) -> bytes:
    raw = json.dumps(body).encode()
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n" % (
        len(raw), b"Connection: close\r\n" if close else b"") + raw)


async def test_pipelined_requests_are_answered_in_order_and_close_is_honoured(url: str) -> None:
    slow, fast = CHAT | {"model": "slow", "messages": [{"role": "user", "content": "ECHO: first"}]}, CHAT
    began = time.monotonic()
    data = await _raw(url, _request(slow) + _request(fast, close=True))
    assert time.monotonic() - began >= 0.06  # the slow one's latency was kept
    answers = data.split(b"HTTP/1.1 200 OK")[1:]
    assert len(answers) == 2
    assert b'"first"' in answers[0] and b'"hello there"' in answers[1]
    assert b"Connection: close" in answers[1]


async def test_a_chunked_body_is_piped_to_the_app(url: str) -> None:
    raw = json.dumps(CHAT).encode()
    payload = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
               b"Connection: close\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(raw), raw))
    data = await _raw(url, payload)
    assert data.startswith(b"HTTP/1.1 200 OK") and b"hello there" in data
