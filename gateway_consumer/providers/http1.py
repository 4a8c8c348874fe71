"""A lean HTTP/1.1 client for plain (non-streamed) provider calls: one POST, one JSON answer, kept-alive.

Why not aiohttp for these: a profile of the gateway at 500 requests/s put about a quarter of its Python
time in aiohttp's client (request and response objects, stream readers, payload writers, tasks), for an
exchange that is one request line, a few headers and a JSON body each way. Here a connection is an
`asyncio.Protocol` that writes the request in one call and parses the answer as its bytes arrive
(Content-Length, chunked, or to the end of the connection), and a pool keeps idle connections per origin.
http and https (the platform's default TLS context) alike. Streamed calls stay on aiohttp
(`ProviderHTTP.session`), which reads server-sent events as they arrive.

A reused connection the server closed while idle is noticed before reuse (its end arrives as EOF); a
connection that breaks mid-exchange raises `HTTPTransportError`, a `connection` error the retry policy
retries. A cancelled call (its target's timeout) closes its connection rather than returning it.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import zlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp

#: The largest answer read (headers and body); a provider's JSON answer is kilobytes.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
#: Idle connections kept per origin; more than this many finishing at once are closed instead.
MAX_IDLE_PER_ORIGIN = 1024
_USER_AGENT = "streamgate"


class HTTPTransportError(ConnectionError):
    """The exchange broke: refused, reset, closed before the answer ended, or an answer not HTTP/1.x."""


@dataclass(frozen=True, slots=True)
class HTTPReply:
    status: int
    headers: dict[str, str]  # names lower-cased; a repeated header keeps its last value
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class _Origin:
    host: str
    port: int
    tls: bool
    path: str  # with its query
    host_header: str

    @classmethod
    def parse(cls, url: str) -> _Origin:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        host = parts.hostname
        shown = f"[{host}]" if ":" in host else host
        default = port == (443 if tls else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(host, port, tls, path, shown if default else f"{shown}:{port}")


class _Exchange(asyncio.Protocol):
    """One kept-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.buffer = bytearray()
        self.answer: asyncio.Future[HTTPReply] | None = None
        self.head: tuple[int, dict[str, str], bool] | None = None  # status, headers, keep-alive
        self.length: int | None = None  # body bytes expected; None: chunked or to the end
        self.chunked = False

    # -- asyncio.Protocol --------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # not an isinstance check: uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.answer is None or self.answer.done():  # bytes nobody asked for: the connection is unusable
            self._close()
            return
        self.buffer += data
        if len(self.buffer) > MAX_RESPONSE_BYTES:
            self._fail(HTTPTransportError(f"answer larger than {MAX_RESPONSE_BYTES} bytes"))
            return
        try:
            self._parse()
        except (ValueError, IndexError) as exc:
            self._fail(HTTPTransportError(f"malformed HTTP answer: {exc}"))

    def eof_received(self) -> bool | None:
        self.closed = True
        if self.head is not None and self.length is None and not self.chunked:
            self._finish(bytes(self.buffer), keep=False)  # a body that lasts to the end of the connection
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.head is not None and self.length is None and not self.chunked and self.answer is not None \
                and not self.answer.done():
            self._finish(bytes(self.buffer), keep=False)
            return
        why = f": {exc}" if exc else ""
        self._fail(HTTPTransportError(f"connection closed before the answer ended{why}"))

    # -- one exchange ----------------------------------------------------------------------------------
    def send(self, request: bytes, loop: asyncio.AbstractEventLoop) -> asyncio.Future[HTTPReply]:
        assert self.transport is not None
        self.buffer.clear()
        self.head, self.length, self.chunked = None, None, False
        self.answer = loop.create_future()
        self.transport.write(request)
        return self.answer

    @property
    def reusable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def _parse(self) -> None:
        if self.head is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            del self.buffer[:end + 4]
            version, _, rest = lines[0].partition(" ")
            if not version.startswith("HTTP/1."):
                raise ValueError(f"status line {lines[0][:80]!r}")
            status = int(rest[:3])
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
                self._parse()
                return
            connection = headers.get("connection", "").lower()
            keep = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
            self.head = (status, headers, keep)
            if status in (204, 304):
                self.length = 0
            elif "chunked" in headers.get("transfer-encoding", "").lower():
                self.chunked = True
            elif "content-length" in headers:
                self.length = int(headers["content-length"])
        if self.chunked:
            self._parse_chunks()
        elif self.length is not None and len(self.buffer) >= self.length:
            body = bytes(self.buffer[:self.length])
            self._finish(body, keep=self.head[2] and len(self.buffer) == self.length)

    def _parse_chunks(self) -> None:
        """Decode the chunked body once all of it has arrived (answers are small; no partial state)."""
        body, pos, data = bytearray(), 0, self.buffer
        while True:
            line_end = data.find(b"\r\n", pos)
            if line_end < 0:
                return
            size = int(bytes(data[pos:line_end]).split(b";", 1)[0].strip() or b"0", 16)
            pos = line_end + 2
            if size == 0:
                trailers_end = data.find(b"\r\n\r\n", pos - 2)
                if trailers_end < 0:
                    return
                assert self.head is not None
                self._finish(bytes(body), keep=self.head[2] and trailers_end + 4 == len(data))
                return
            if len(data) < pos + size + 2:
                return
            body += data[pos:pos + size]
            pos += size + 2

    def _finish(self, body: bytes, *, keep: bool) -> None:
        assert self.head is not None
        status, headers, _ = self.head
        if not keep:
            self._close()
        encoding = headers.get("content-encoding", "identity").lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            try:
                body = zlib.decompress(body, 47)  # 32 + 15: gzip or zlib, detected from the header
            except zlib.error as exc:
                self._fail(HTTPTransportError(f"undecodable {encoding} body: {exc}"))
                return
        elif encoding != "identity":
            self._fail(HTTPTransportError(f"unsupported content-encoding {encoding!r}"))
            return
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(HTTPReply(status, headers, body))
        self.head = None

    def _fail(self, exc: Exception) -> None:
        self._close()
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc)

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class ConnectionPool:
    """Kept-alive HTTP/1.1 connections per origin, for one event loop."""

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self._tls = tls
        self._idle: defaultdict[tuple[str, int, bool], list[_Exchange]] = defaultdict(list)
        self._origins: dict[str, _Origin] = {}

    def _origin(self, url: str) -> _Origin:
        origin = self._origins.get(url)
        if origin is None:
            origin = self._origins[url] = _Origin.parse(url)
        return origin

    async def post_json(self, url: str, body: Any, headers: dict[str, str] | None = None) -> HTTPReply:
        """POST `body` as JSON; the answer as it came (any status). Raises HTTPTransportError."""
        origin = self._origin(url)
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        head = [f"POST {origin.path} HTTP/1.1", f"Host: {origin.host_header}",
                "Content-Type: application/json", f"Content-Length: {len(payload)}",
                "Accept: application/json", "Accept-Encoding: gzip, deflate", f"User-Agent: {_USER_AGENT}"]
        for name, value in (headers or {}).items():
            if "\r" in value or "\n" in value:
                raise ValueError(f"header {name} holds a line break")
            head.append(f"{name}: {value}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload
        key = (origin.host, origin.port, origin.tls)
        exchange = await self._connection(key)
        loop = asyncio.get_running_loop()
        try:
            reply = await exchange.send(request, loop)
        except BaseException:
            exchange._close()  # cancelled (a timeout) or broken: never reused mid-answer
            raise
        if exchange.reusable:
            idle = self._idle[key]
            if len(idle) < MAX_IDLE_PER_ORIGIN:
                idle.append(exchange)
            else:
                exchange._close()
        return reply

    async def _connection(self, key: tuple[str, int, bool]) -> _Exchange:
        idle = self._idle[key]
        while idle:
            exchange = idle.pop()  # the most recently used: the least likely to have timed out
            if exchange.reusable:
                return exchange
        host, port, tls = key
        loop = asyncio.get_running_loop()
        context = (self._tls or ssl.create_default_context()) if tls else None
        try:
            _, exchange = await loop.create_connection(_Exchange, host, port, ssl=context,
                                                       server_hostname=host if tls else None)
        except (OSError, ssl.SSLError) as exc:
            raise HTTPTransportError(f"cannot connect to {host}:{port}: {exc}") from exc
        if tls and self._tls is None:
            self._tls = context
        return exchange

    def close(self) -> None:
        for idle in self._idle.values():
            for exchange in idle:
                exchange._close()
        self._idle.clear()


@dataclass(frozen=True, slots=True)
class ProviderHTTP:
    """What adapters call providers with: plain calls on the lean pool, streams on aiohttp's session."""

    session: aiohttp.ClientSession
    pool: ConnectionPool

    async def post_json(self, url: str, body: Any, headers: dict[str, str] | None = None) -> HTTPReply:
        return await self.pool.post_json(url, body, headers)
