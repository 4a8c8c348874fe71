"""The simulator's front: completions, plain and streamed, answered on a bare asyncio protocol.

Through aiohttp's server a 0 ms completion cost ~0.3 ms of CPU, 70% of it in the server's request and
response machinery (py-spy), and the simulator shares the 2 cores with everything it serves: in
`streamgate bench latency` at 250/s it took 0.8 ms of CPU per request, more than the client. The calls
benchmarks and the demo make, `POST /v1/chat/completions` and `POST /v1/messages` without `stream`, are
answered here, with the same `SimulatedCall` (profiles, failures, counters) as the aiohttp handlers.
Streamed ones too (`stream: true`), with the same events (sse.py), in chunked transfer encoding: piped
through the app, the demo's streamed calls (one request in six) took about as much of the simulator's
CPU as all the others (`bench pipeline` at 1,000/s: 21-23% of a core against 11-14% with no streams).
Any other request (admin, health, a body this parser does not take) switches its connection to
a pipe into the aiohttp app on a private port, for the rest of that connection's life, so every route
keeps one implementation.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from gateway_consumer.simulator.server import SimulatedCall
from gateway_consumer.simulator.sse import Stream, anthropic_stream, openai_stream

log = logging.getLogger("streamgate.simulator")

#: (path, what the call answers with) of the routes answered here
_PLAIN = {b"/v1/chat/completions": "openai", b"/v1/messages": "anthropic"}
_STATUS = {200: b"OK", 400: b"Bad Request", 429: b"Too Many Requests", 500: b"Internal Server Error",
           504: b"Gateway Timeout"}
#: (request body, when the call began, when it answered: epoch seconds) of each call answered here
Observer = Callable[[dict[str, Any], float, float], None]
MAX_HEAD = 64 * 1024
_STREAM_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                b"Transfer-Encoding: chunked\r\n")


class _Request:
    """One parsed HTTP/1.1 request: what the fast path needs to decide and answer."""

    __slots__ = ("body", "close", "method", "path")

    def __init__(self, method: bytes, path: bytes, body: bytes, close: bool) -> None:
        self.method, self.path, self.body, self.close = method, path, body, close


def parse(buffer: bytearray) -> tuple[_Request | None, int]:
    """The first complete request in `buffer` and its length; (None, 0) while incomplete, (None, -1)
    when it is one this parser does not take (chunked, oversized headers, garbage): pipe it."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None, (0 if len(buffer) < MAX_HEAD else -1)
    lines = bytes(buffer[:end]).split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        return None, -1
    length, close = 0, parts[2] == b"HTTP/1.0"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            if not value.strip().isdigit():
                return None, -1
            length = int(value)
        elif name == b"transfer-encoding":
            return None, -1
        elif name == b"connection":
            close = value.strip().lower() == b"close"
    total = end + 4 + length
    if len(buffer) < total:
        return None, 0
    return _Request(parts[0], parts[1].split(b"?")[0], bytes(buffer[end + 4:total]), close), total


def response_bytes(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None,
                   close: bool = False) -> bytes:
    body = json.dumps(payload).encode()
    head = [b"HTTP/1.1 %d %s" % (status, _STATUS.get(status, b"Unknown")),
            b"Content-Type: application/json; charset=utf-8", b"Content-Length: %d" % len(body)]
    head += [f"{k}: {v}".encode() for k, v in (headers or {}).items()]
    if close:
        head.append(b"Connection: close")
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class FastPath(asyncio.Protocol):
    """One client connection: plain completions answered here, anything else piped to `backend_port`."""

    def __init__(self, app: web.Application, backend_port: int, observe: Observer | None = None) -> None:
        self.app, self.backend_port, self.observe = app, backend_port, observe
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False  # a call is being answered: the next request waits (HTTP/1.1 answers in order)
        self.pipe: asyncio.StreamWriter | None = None
        self.piping: list[bytes] | None = None  # bytes for the pipe while it connects

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.pipe is not None:
            self.pipe.close()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.piping is not None:
            self._to_pipe(data)
            return
        self.buffer += data
        self._next()

    def _next(self) -> None:
        while not self.busy and self.buffer and self.transport is not None:
            request, used = parse(self.buffer)
            if used == 0:
                return
            kind = _PLAIN.get(request.path) if request is not None and request.method == b"POST" else None
            body = _json_object(request.body) if request is not None and kind else None
            if request is None or kind is None or body is None:
                self._start_pipe()
                return
            del self.buffer[:used]
            self._answer(kind, body, request.close)

    def _answer(self, kind: str, body: dict[str, Any], close: bool) -> None:
        loop = asyncio.get_running_loop()
        began = time.time()
        call = SimulatedCall(self.app, body, anthropic=kind == "anthropic")
        failed = call.failure()
        if failed is not None:
            delay, status, payload, headers = failed
        elif body.get("stream"):
            self._stream(openai_stream(call, body) if kind == "openai" else anthropic_stream(call),
                         close, body, began)
            return
        else:
            delay, status, headers = call.latency_s, 200, {}
            payload = call.openai_completion() if kind == "openai" else call.anthropic_message()
        reply = response_bytes(status, payload, headers, close)
        if delay <= 0:
            self._send(reply, close, body, began)
            return
        self.busy = True
        loop.call_later(delay, self._send, reply, close, body, began)

    def _send(self, reply: bytes, close: bool, body: dict[str, Any], began: float) -> None:
        self.busy = False
        if self.transport is None:
            return
        if self.observe is not None:
            self.observe(body, began, time.time())
        self.transport.write(reply)
        if close:
            self.transport.close()
            return
        self._next()

    def _stream(self, stream: Stream, close: bool, body: dict[str, Any], began: float) -> None:
        """The events on the stream's timeline, each an HTTP chunk; the connection's next request waits."""
        assert self.transport is not None
        self.busy = True
        self.transport.write(_STREAM_HEAD + (b"Connection: close\r\n\r\n" if close else b"\r\n"))
        started = asyncio.get_running_loop().time()
        self._stream_step(stream.timeline(), 0, started, close, body, began)

    def _stream_step(self, timeline: list[tuple[float, bytes]], i: int, started: float, close: bool,
                     body: dict[str, Any], began: float) -> None:
        """Write what is due, then come back when the next piece is (one timer per piece)."""
        loop = asyncio.get_running_loop()
        while i < len(timeline) and started + timeline[i][0] <= loop.time():
            if self.transport is None:  # the caller went away mid-stream
                return
            data = timeline[i][1]
            self.transport.write(b"%x\r\n%s\r\n" % (len(data), data) if data else b"")
            i += 1
        if i < len(timeline):
            loop.call_at(started + timeline[i][0], self._stream_step, timeline, i, started, close, body,
                         began)
            return
        self._send(b"0\r\n\r\n", close, body, began)

    # -- the pipe into the aiohttp app -------------------------------------------------------------
    def _start_pipe(self) -> None:
        self.piping = [bytes(self.buffer)]
        self.buffer.clear()
        asyncio.get_running_loop().create_task(self._connect_pipe())

    def _to_pipe(self, data: bytes) -> None:
        if self.pipe is not None:
            self.pipe.write(data)
        elif self.piping is not None:
            self.piping.append(data)

    async def _connect_pipe(self) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.backend_port)
        except OSError as exc:
            log.error("simulator: the aiohttp app is unreachable: %s", exc)
            if self.transport is not None:
                self.transport.close()
            return
        for chunk in self.piping or []:
            writer.write(chunk)
        self.pipe = writer
        while self.transport is not None:
            data = await reader.read(65536)
            if not data:
                break
            self.transport.write(data)
        writer.close()
        if self.transport is not None:
            self.transport.close()


def _json_object(raw: bytes) -> dict[str, Any] | None:
    """The JSON object of a request this path answers, else None (the app answers it, bad JSON
    included, with its own errors)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


async def start(app: web.Application, host: str, port: int, observe: Observer | None = None,
                backlog: int = 4096) -> tuple[web.AppRunner, asyncio.AbstractServer]:
    """The aiohttp app on a private port, and the fast path on (host, port) in front of it."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    private = socket.socket()
    private.bind(("127.0.0.1", 0))
    await web.SockSite(runner, private, backlog=backlog).start()
    backend_port = private.getsockname()[1]
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: FastPath(app, backend_port, observe), host, port,
                                      backlog=backlog, reuse_address=True)
    return runner, server


def run(app: web.Application, host: str, port: int, observe: Observer | None = None,
        ready: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted (SIGINT/SIGTERM), as `web.run_app` would."""

    async def main() -> None:
        runner, server = await start(app, host, port, observe)
        if ready is not None:
            ready(f"serving on http://{host}:{port}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            server.close()
            await runner.cleanup()

    asyncio.run(main())
