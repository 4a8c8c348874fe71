"""Send request events to Kafka from a service, synchronously or with asyncio.

The producer is idempotent (`enable.idempotence`, `acks=all`), so a retried send never duplicates a
request on the topic. Each `send` validates and encodes before anything is queued: a bad request
raises :class:`InvalidRequestError` in the caller, not a dead letter later.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from pydantic import ValidationError

from schemas import EventEncodeError, TopicCodec, make_codec
from schemas.topics import Topic, physical_name
from streamgate.client.exceptions import DeliveryError, InvalidRequestError
from streamgate.client.request import ChatRequest
from streamgate.config import Role, Settings
from streamgate.kafka.clients import producer_config


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    request_id: str
    topic: str
    partition: int
    offset: int


def build_request(**fields: Any) -> ChatRequest:
    """A validated request from keyword fields, or :class:`InvalidRequestError` saying what is wrong."""
    try:
        return ChatRequest(**fields)
    except ValidationError as exc:
        raise InvalidRequestError(str(exc)) from exc


class RequestProducer:
    """A thread-safe producer of `Request` events; use as a context manager so it flushes on exit."""

    def __init__(self, settings: Settings, *, client_id: str = "streamgate-client",
                 extra_config: dict[str, Any] | None = None, role: Role = "service") -> None:
        """`role`: the principal it connects as: `service` (may only write `requests`) unless the
        caller is another component that produces requests (the front door)."""
        self.topic = physical_name(Topic.REQUESTS, settings.kafka.topic_prefix)
        self._codec: TopicCodec = make_codec(self.topic, "Request", settings.schema_registry.url)
        config = producer_config(settings, client_id=client_id, role=role)
        config.update(extra_config or {})
        self._producer = Producer(config)

    def encode(self, request: ChatRequest) -> bytes:
        try:
            return self._codec.encode(request.to_event())
        except EventEncodeError as exc:
            raise InvalidRequestError(str(exc)) from exc

    def send(self, request: ChatRequest) -> Future[DeliveryReport]:
        """Queue one request; the future resolves when the broker has acknowledged it."""
        value = self.encode(request)
        future: Future[DeliveryReport] = Future()
        future.set_running_or_notify_cancel()

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                future.set_exception(DeliveryError(f"request {request.request_id}: {err.str()}"))
            else:
                future.set_result(DeliveryReport(request.request_id, msg.topic() or "",
                                                 msg.partition() or 0, msg.offset() or 0))

        # a conversation stays on one partition, so its requests are processed in order
        self._produce(request.session_id or request.request_id, value, on_delivery)
        return future

    def _produce(self, key: str, value: bytes, on_delivery: Any) -> None:
        while True:
            try:
                self._producer.produce(self.topic, value=value, key=key.encode(), on_delivery=on_delivery)
                break
            except BufferError:  # local queue full: serve delivery reports to make room
                self._producer.poll(0.05)
        self._producer.poll(0)

    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery callbacks; call it now and then when sending from a loop."""
        return int(self._producer.poll(timeout))

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for outstanding deliveries; returns how many are still in flight."""
        return int(self._producer.flush(timeout))

    def close(self) -> None:
        remaining = self.flush()
        if remaining:
            raise DeliveryError(f"{remaining} request(s) were not delivered before close")

    def __enter__(self) -> RequestProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncRequestProducer:
    """The asyncio form: `await send(request)` returns once the broker has the event.

    A background thread serves librdkafka's delivery callbacks so the event loop never blocks on them.
    """

    def __init__(self, settings: Settings, *, client_id: str = "streamgate-client-async",
                 extra_config: dict[str, Any] | None = None, role: Role = "service") -> None:
        self._sync = RequestProducer(settings, client_id=client_id, extra_config=extra_config, role=role)
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="streamgate-producer-poll", daemon=True)
        self._poller.start()

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._sync.poll(0.1)

    async def send(self, request: ChatRequest) -> DeliveryReport:
        return await asyncio.wrap_future(self._sync.send(request))

    async def close(self) -> None:
        self._stop.set()
        await asyncio.to_thread(self._poller.join)
        await asyncio.to_thread(self._sync.close)

    async def __aenter__(self) -> AsyncRequestProducer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
