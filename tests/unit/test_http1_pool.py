"""The lean HTTP/1.1 client for provider calls, plain and streamed, over real sockets against scripted
servers."""

from __future__ import annotations

import asyncio
import gzip
import json
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from gateway_consumer.providers import ProviderCall, ProviderError
from gateway_consumer.providers.http1 import ConnectionPool, HTTPTransportError, ProviderHTTP
from gateway_consumer.providers.openai_compat import OpenAICompatible
from streamgate import eventloop

#: runs a test's coroutine to its end on one kind of event loop
Runner = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    """Every test on both loops the gateway can run on (uvloop by default: streamgate/eventloop.py)."""
    return lambda main: eventloop.run(main, request.param)


#: reads one request (head and Content-Length body) and says what to write back, or None to close
Script = Callable[[int, bytes], Awaitable[bytes | None]]

OK_BODY = json.dumps({"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
                      "usage": {"prompt_tokens": 3, "completion_tokens": 1}}).encode()


def _ok(body: bytes = OK_BODY, extra: str = "") -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


class Server:
    """A scripted HTTP server: counts connections and the requests it read."""

    def __init__(self, script: Script) -> None:
        self.script, self.connections, self.requests = script, 0, []  # type: ignore[var-annotated]
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1/chat/completions"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                answer = await self.script(len(self.requests), head + body)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _always(answer: bytes) -> Script:
    async def script(n: int, request: bytes) -> bytes | None:
        return answer
    return script


def test_a_json_answer_comes_back_and_the_connection_is_kept_alive(run: Runner) -> None:
    async def main() -> None:
        async with Server(await _always(_ok())) as server:
            pool = ConnectionPool()
            replies = [await pool.post_json(server.url, {"model": "m", "n": i}, {"Authorization": "Bearer k"})
                       for i in range(3)]
            pool.close()
        assert [r.status for r in replies] == [200, 200, 200]
        assert replies[0].json()["choices"][0]["message"]["content"] == "hi"
        assert server.connections == 1
        first = server.requests[0]
        assert first.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
        assert b"\r\nAuthorization: Bearer k\r\n" in first and b"\r\nHost: 127.0.0.1:" in first
        assert json.loads(first.split(b"\r\n\r\n", 1)[1]) == {"model": "m", "n": 0}

    run(main())


def test_chunked_gzip_and_interim_answers_are_decoded(run: Runner) -> None:
    packed = gzip.compress(OK_BODY)
    chunked = (b"HTTP/1.1 100 Continue\r\n\r\n"
               b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n"
               + f"{10:x};ext=1\r\n".encode() + packed[:10] + b"\r\n"
               + f"{len(packed) - 10:x}\r\n".encode() + packed[10:] + b"\r\n0\r\nX-Trailer: t\r\n\r\n")

    async def main() -> None:
        async with Server(await _always(chunked)) as server:
            pool = ConnectionPool()
            one = await pool.post_json(server.url, {})
            two = await pool.post_json(server.url, {})
            pool.close()
        assert one.body == two.body == OK_BODY
        assert one.header("content-encoding") == "gzip"
        assert server.connections == 1  # a chunked answer read to its end leaves the connection usable

    run(main())


def test_an_answer_without_length_lasts_to_the_end_of_its_connection(run: Runner) -> None:
    async def main() -> None:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + OK_BODY)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/x"
        pool = ConnectionPool()
        replies = [await pool.post_json(url, {}) for _ in range(2)]
        server.close()
        assert [r.body for r in replies] == [OK_BODY, OK_BODY]
        assert not any(pool._idle.values())  # never kept: its end was the body's end

    run(main())


def test_a_connection_the_server_closed_while_idle_is_not_reused(run: Runner) -> None:
    async def script(n: int, request: bytes) -> bytes | None:
        return _ok(extra="Connection: close\r\n") if n == 1 else _ok()

    async def main() -> None:
        async with Server(script) as server:
            pool = ConnectionPool()
            first = await pool.post_json(server.url, {})
            await asyncio.sleep(0.05)
            second = await pool.post_json(server.url, {})
            pool.close()
        assert first.status == second.status == 200
        assert server.connections == 2

    run(main())


def test_a_broken_exchange_is_a_transport_error_and_the_next_call_works(run: Runner) -> None:
    async def script(n: int, request: bytes) -> bytes | None:
        if n == 1:
            return b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"half\":"  # then the server closes
        return _ok()

    async def main() -> None:
        count = 0

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal count
            count += 1
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(2)
            answer = await script(count, b"")
            assert answer is not None
            writer.write(answer)
            await writer.drain()
            if count == 1:
                writer.close()
                return
            await reader.read()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/x"
        pool = ConnectionPool()
        with pytest.raises(HTTPTransportError, match="closed before the answer ended"):
            await pool.post_json(url, {})
        assert (await pool.post_json(url, {})).status == 200
        pool.close()
        server.close()

    run(main())


def test_a_refused_connection_and_a_malformed_answer_are_transport_errors(run: Runner) -> None:
    async def main() -> None:
        pool = ConnectionPool()
        probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = probe.sockets[0].getsockname()[1]
        probe.close()
        await probe.wait_closed()
        with pytest.raises(HTTPTransportError, match="cannot connect"):
            await pool.post_json(f"http://127.0.0.1:{port}/x", {})
        async with Server(await _always(b"SSH-2.0-OpenSSH\r\n\r\n")) as server:
            with pytest.raises(HTTPTransportError, match="malformed HTTP answer"):
                await pool.post_json(server.url, {})
        with pytest.raises(ValueError, match="line break"):
            await pool.post_json("http://127.0.0.1:1/x", {}, {"Authorization": "Bearer k\n"})
        with pytest.raises(ValueError, match="not an http"):
            await pool.post_json("ftp://example.com/x", {})

    run(main())


def test_a_cancelled_call_closes_its_connection(run: Runner) -> None:
    async def main() -> None:
        hung_up = asyncio.Event()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0]))
            if not hung_up.is_set() and await reader.read() == b"":  # never answers the first call
                hung_up.set()
            else:
                writer.write(_ok())
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/x"
        pool = ConnectionPool()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await pool.post_json(url, {})
        await asyncio.wait_for(hung_up.wait(), 1.0)  # the caller hung up, rather than leave it open
        assert (await pool.post_json(url, {})).body == OK_BODY
        pool.close()
        server.close()

    run(main())


def test_https_with_the_platforms_tls(tmp_path: Path, run: Runner) -> None:
    from streamgate.config import load_settings
    from streamgate.kafka.security import ensure_local_tls

    tls = ensure_local_tls(load_settings().with_state_dir(tmp_path), tmp_path)
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(tls.keystore)

    async def main() -> None:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            writer.write(_ok())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_side)
        url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions"
        trusting = ConnectionPool(tls=ssl.create_default_context(cafile=str(tls.ca)))
        assert (await trusting.post_json(url, {"model": "m"})).json()["usage"]["prompt_tokens"] == 3
        trusting.close()
        with pytest.raises(HTTPTransportError, match="cannot connect"):  # the CA is not the platform's
            await ConnectionPool().post_json(url, {})
        server.close()

    run(main())


def test_the_adapter_classifies_what_the_pool_returns(run: Runner) -> None:
    async def script(n: int, request: bytes) -> bytes | None:
        if n == 1:
            return b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0.25\r\nContent-Length: 4\r\n\r\nslow"
        if n == 2:
            return _ok(b"not json")
        return _ok()

    async def main() -> list[object]:
        async with Server(script) as server:
            http = ProviderHTTP(ConnectionPool())
            adapter = OpenAICompatible(server.url.rsplit("/chat/completions", 1)[0], "sk-test")
            call = ProviderCall("m", [{"role": "user", "content": "hi", "name": None, "tool_calls_json": None,
                                       "tool_call_id": None}], {})  # type: ignore[typeddict-item]
            out: list[object] = []
            for _ in range(3):
                try:
                    out.append(await adapter.complete(http, call))
                except ProviderError as exc:
                    out.append(exc)
            http.pool.close()
            assert b"Authorization: Bearer sk-test" in server.requests[0]
            return out

    limited, malformed, ok = run(main())
    assert isinstance(limited, ProviderError) and limited.error_class == "rate_limited"
    assert limited.retry_after_s == 0.25 and limited.http_status == 429
    assert isinstance(malformed, ProviderError) and malformed.error_class == "bad_response"
    assert getattr(ok, "content", None) == "hi" and getattr(ok, "prompt_tokens", None) == 3


# -- streamed answers ------------------------------------------------------------------------------
#: per request, what the server writes: bytes, or a float (seconds to wait), or None (close)
Pieces = list[bytes | float | None]

STREAM_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def _piece_server(answers: list[Pieces]) -> tuple[asyncio.Server, str, list[int]]:
    """Answers the n-th request with `answers[n]`, piece by piece; counts connections."""
    connections, served = [0], [0]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[0] += 1
        try:
            while served[0] < len(answers):
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                await reader.readexactly(length)
                pieces, served[0] = answers[served[0]], served[0] + 1
                for piece in pieces:
                    if piece is None:
                        return
                    if isinstance(piece, float):
                        await asyncio.sleep(piece)
                    else:
                        writer.write(piece)
                        await writer.drain()
            await reader.read()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/x", connections


def test_a_stream_s_lines_arrive_as_they_are_sent_and_its_connection_is_kept(run: Runner) -> None:
    async def main() -> None:
        server, url, connections = await _piece_server([
            [STREAM_HEAD + _chunk(b"data: 1\n\n"), 0.3, _chunk(b"data: 2\n\nda"), _chunk(b"ta: 3\n\n"),
             b"0\r\n\r\n"],
            [b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\ndata", 0.05, b": 4\n\n"],
            [_ok()]])
        pool = ConnectionPool()
        loop = asyncio.get_running_loop()
        async with pool.stream_json(url, {"stream": True}) as reply:
            assert reply.status == 200 and reply.header("Content-Type") == "text/event-stream"
            began, seen = loop.time(), []
            async for line in reply.body.lines():
                seen.append((line, loop.time() - began))
        assert [line for line, _ in seen] == [b"data: 1\n", b"\n", b"data: 2\n", b"\n", b"data: 3\n", b"\n"]
        assert seen[0][1] < 0.2 <= seen[2][1]  # the first event before the server's pause, not after it
        async with pool.stream_json(url, {}) as reply:  # a length-delimited body, streamed too
            assert [line async for line in reply.body.lines()] == [b"data: 4\n", b"\n"]
        assert (await pool.post_json(url, {})).status == 200
        assert connections[0] == 1  # one connection for all three
        pool.close()
        server.close()

    run(main())


def test_a_stream_left_early_keeps_its_connection_only_if_it_ends_soon(
        run: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway_consumer.providers.http1.STREAM_END_WAIT_S", 0.2)

    async def main() -> None:
        server, url, connections = await _piece_server([
            [STREAM_HEAD + _chunk(b"data: [DONE]\n\n"), 0.05, b"0\r\n\r\n"],  # ends soon after [DONE]
            [STREAM_HEAD + _chunk(b"data: [DONE]\n\n"), 1.0, b"0\r\n\r\n"],  # ends too late
            [_ok()], [_ok()]])
        pool = ConnectionPool()
        for expected_connections in (1, 1, 2):
            if expected_connections == 2:
                assert (await pool.post_json(url, {})).status == 200
            else:
                async with pool.stream_json(url, {}) as reply:
                    async for line in reply.body.lines():
                        if line.strip() == b"data: [DONE]":
                            break
            assert connections[0] == expected_connections
        pool.close()
        server.close()

    run(main())


def test_a_stream_broken_midway_is_a_transport_error(run: Runner) -> None:
    async def main() -> None:
        server, url, _ = await _piece_server([[STREAM_HEAD + _chunk(b"data: 1\n\n"), 0.05, None], [_ok()]])
        pool = ConnectionPool()
        seen = []
        with pytest.raises(HTTPTransportError, match="closed before the answer ended"):
            async with pool.stream_json(url, {}) as reply:
                async for line in reply.body.lines():
                    seen.append(line)
        assert seen == [b"data: 1\n", b"\n"]
        assert (await pool.post_json(url, {})).status == 200  # a new connection
        pool.close()
        server.close()

    run(main())


def test_a_chunked_plain_answer_split_anywhere_is_decoded_once_whole(run: Runner) -> None:
    raw = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
           + _chunk(OK_BODY[:10]) + _chunk(OK_BODY[10:]) + b"0\r\nX-Trailer: t\r\n\r\n")

    async def main() -> None:
        pieces: Pieces = []
        for at in range(0, len(raw), 7):  # 7 bytes at a time: sizes, data and CRLFs cut anywhere
            pieces += [raw[at:at + 7], 0.001]
        server, url, connections = await _piece_server([pieces, [_ok()]])
        pool = ConnectionPool()
        reply = await pool.post_json(url, {})
        assert reply.status == 200 and reply.body == OK_BODY
        assert (await pool.post_json(url, {})).status == 200 and connections[0] == 1
        pool.close()
        server.close()

    run(main())
