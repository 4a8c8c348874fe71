"""Request-reply over Kafka: send a request event and get its answer back, for services that speak Kafka.

`GatewayClient.chat` (sync) and `AsyncGatewayClient.chat` send a `Request` naming the client's reply
partition, with its timeout as the request's deadline (no provider attempt starts once the caller has
given up; the answer is then failed with reason `deadline_exceeded`), and return the final `Response`
once the dispatcher's transaction holding it has committed, or raise `RequestRejectedError` (the request
path refused it), `RequestFailedError` (no provider answered acceptably) or `ReplyTimeoutError`. The HTTP
front door uses the same reader (`streamgate.client.replies`).

Each client owns one reply partition (random unless given); run clients with distinct partitions to keep
them from reading each other's answers (they skip them, but still fetch them).
"""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from streamgate.client.exceptions import ReplyTimeoutError, RequestFailedError, RequestRejectedError
from streamgate.client.producer import AsyncRequestProducer, RequestProducer, build_request
from streamgate.client.replies import AsyncWaiter, QueueWaiter, ReplyReader
from streamgate.client.request import ChatRequest
from streamgate.config import Settings

DEFAULT_TIMEOUT_S = 120.0
#: a request waits for its answer: send it at once rather than after librdkafka's 5 ms linger
LOW_LATENCY = {"linger.ms": 0}


def final_or_raise(response: dict[str, Any]) -> dict[str, Any]:
    status = response["status"]
    if status == "ok":
        return response
    if status == "rejected":
        raise RequestRejectedError(response)
    raise RequestFailedError(response)


class GatewayClient:
    """Synchronous request-reply. Thread-safe: many threads may call `chat` at once."""

    def __init__(self, settings: Settings, *, api_key: str, reply_partition: int | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.api_key, self.timeout_s = api_key, timeout_s
        # connects as the `service` principal: writes `requests`, reads the reply topics
        self.replies = ReplyReader(settings, reply_partition, client_id="streamgate-client-replies").start()
        self.producer = RequestProducer(settings, client_id="streamgate-gateway-client",
                                        extra_config=LOW_LATENCY)

    def request(self, **fields: Any) -> ChatRequest:
        """A validated request for this client's key and reply partition (InvalidRequestError if not)."""
        return build_request(api_key=self.api_key, reply_partition=self.replies.partition, **fields)

    def chat(self, *, timeout_s: float | None = None, **fields: Any) -> dict[str, Any]:
        """Send one request (fields as `build_request` takes them) and return its final Response."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        request = self.request(**fields).with_timeout(timeout)
        deadline = time.monotonic() + timeout
        with self._waiting(request.request_id) as waiter:
            delivered = self.producer.send(request)
            while not delivered.done():  # delivery reports are served by poll(), on the caller's thread
                if time.monotonic() >= deadline:
                    raise ReplyTimeoutError(request.request_id, timeout)
                self.producer.poll(0.005)
            delivered.result()  # a DeliveryError if the broker refused it
            while True:
                try:
                    event = waiter.events.get(timeout=max(deadline - time.monotonic(), 0.0))
                except queue.Empty:
                    raise ReplyTimeoutError(request.request_id, timeout) from None
                if event.kind == "final":
                    return final_or_raise(event.record)

    @contextmanager
    def _waiting(self, request_id: str) -> Iterator[QueueWaiter]:
        waiter = QueueWaiter()
        self.replies.expect(request_id, waiter)
        try:
            yield waiter
        finally:
            self.replies.forget(request_id)

    def close(self) -> None:
        self.replies.close()
        self.producer.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncGatewayClient:
    """The asyncio twin: `async with AsyncGatewayClient(...) as client: await client.chat(...)`."""

    def __init__(self, settings: Settings, *, api_key: str, reply_partition: int | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.settings, self.api_key, self.timeout_s = settings, api_key, timeout_s
        self.reply_partition = reply_partition
        self.replies: ReplyReader | None = None
        self.producer: AsyncRequestProducer | None = None

    async def start(self) -> AsyncGatewayClient:
        self.replies = await asyncio.to_thread(
            ReplyReader(self.settings, self.reply_partition, client_id="streamgate-client-replies").start)
        self.producer = AsyncRequestProducer(self.settings, client_id="streamgate-gateway-client-async",
                                             extra_config=LOW_LATENCY)
        return self

    def request(self, **fields: Any) -> ChatRequest:
        assert self.replies is not None, "start() the client first (or use `async with`)"
        return build_request(api_key=self.api_key, reply_partition=self.replies.partition, **fields)

    async def chat(self, *, timeout_s: float | None = None, **fields: Any) -> dict[str, Any]:
        timeout = self.timeout_s if timeout_s is None else timeout_s
        request = self.request(**fields).with_timeout(timeout)
        async with self._waiting(request) as waiter:
            try:
                async with asyncio.timeout(timeout):
                    while (event := await waiter.events.get()).kind != "final":
                        pass
            except TimeoutError:
                raise ReplyTimeoutError(request.request_id, timeout) from None
            return final_or_raise(event.record)

    @asynccontextmanager
    async def _waiting(self, request: ChatRequest) -> AsyncIterator[AsyncWaiter]:
        assert self.replies is not None and self.producer is not None, "start() the client first"
        waiter = AsyncWaiter(asyncio.get_running_loop())
        self.replies.expect(request.request_id, waiter)
        try:
            await self.producer.send(request)
            yield waiter
        finally:
            self.replies.forget(request.request_id)

    async def close(self) -> None:
        if self.producer is not None:
            await self.producer.close()
        if self.replies is not None:
            await asyncio.to_thread(self.replies.close)

    async def __aenter__(self) -> AsyncGatewayClient:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
