"""Answers coming back through Kafka: one reader per caller process, reading only its own reply partition.

A caller (a front-door instance, a `GatewayClient`) names a partition of `replies` in each request it sends
(`reply_partition`); the dispatcher writes the final Response there (at once, or in the same transaction as
the one on `responses` when callers read committed), and the pieces of a streamed answer to the same
partition of `replies.chunks` as they arrive.
So N callers do not each read every answer (Spring Kafka's reply-partition pattern), and the reader needs
no consumer group: it is assigned its two partitions from their current end when it starts, before any
request that names them is sent.

Waiters register a request id before the request is produced and are forgotten when the caller is done
(answered, timed out or disconnected), so nothing accumulates; an answer nobody waits for (another caller
sharing the partition, a caller that gave up) is skipped.

By default (`client.answer_before_commit`) the gateway writes an answer to `replies` as soon as it has it,
outside its transaction, and the reader takes it at once: a call then waits for no commit at all. If the
gateway dies before its transaction commits, the request is answered again by its successor, so
`replies` can hold two finals for one request id. The reader hands each waiter ONE final (the first; the
waiter is forgotten as it is handed over), so no caller sees two answers. The committed topics (`responses`,
`telemetry`) hold only the second, so cost is counted once; the first may differ from it (another provider
sample), which is the price of not waiting for the commit. `answer_before_commit: false` reads
read_committed: a caller sees only committed answers, one commit later.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import random
import threading
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from schemas import EventDecodeError, TopicCodec, make_codec
from schemas.topics import Topic, load_topic_specs, physical_name
from streamgate.config import Role, Settings
from streamgate.kafka.clients import caller_reply_config

log = logging.getLogger("streamgate.replies")

Kind = Literal["chunk", "final"]


@dataclass(frozen=True, slots=True)
class ReplyEvent:
    kind: Kind
    record: dict[str, Any]


class Waiter(ABC):
    """Where the reader puts the events of one request; `on_event` runs on the reader's thread."""

    @abstractmethod
    def on_event(self, event: ReplyEvent) -> None:
        """Hand over one event (it must not block the reader)."""


class QueueWaiter(Waiter):
    """For a thread that blocks on the answer (the sync client)."""

    def __init__(self) -> None:
        self.events: queue.Queue[ReplyEvent] = queue.Queue()

    def on_event(self, event: ReplyEvent) -> None:
        self.events.put(event)


class AsyncWaiter(Waiter):
    """For a coroutine on `loop` (the front door, the async client)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.events: asyncio.Queue[ReplyEvent] = asyncio.Queue()

    def on_event(self, event: ReplyEvent) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, event)


def reply_partitions(settings: Settings) -> int:
    """How many partitions `replies` has in the topic spec: the most reply readers that each own one."""
    spec = next(s for s in load_topic_specs(partitions=settings.kafka.partitions) if s.name == Topic.REPLIES)
    return spec.partitions


class ReplyReader:
    """Reads partition `partition` of `replies` and `replies.chunks` and hands each event to its waiter."""

    def __init__(self, settings: Settings, partition: int | None = None, *,
                 client_id: str = "streamgate-client-replies", role: Role = "service") -> None:
        prefix = settings.kafka.topic_prefix
        self.partition = random.randrange(reply_partitions(settings)) if partition is None else partition
        self.topics = {physical_name(Topic.REPLIES, prefix): "final",
                       physical_name(Topic.REPLY_CHUNKS, prefix): "chunk"}
        registry = settings.schema_registry.url
        self.codecs: dict[str, TopicCodec] = {
            name: make_codec(name, "Response" if kind == "final" else "ResponseChunk", registry)
            for name, kind in self.topics.items()}
        unique = f"{client_id}-{uuid.uuid4().hex[:8]}"
        self._consumer = Consumer(caller_reply_config(settings, client_id=unique, role=role))
        self._waiters: dict[str, Waiter] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.undecodable = 0
        self.unclaimed = 0

    def start(self, timeout_s: float = 30.0) -> ReplyReader:
        """Assign both partitions at their current end; returns once the reader is in place."""
        assignment = []
        for topic in self.topics:
            _low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, self.partition),
                                                              timeout=timeout_s)
            assignment.append(TopicPartition(topic, self.partition, high))
        self._consumer.assign(assignment)
        self._thread = threading.Thread(target=self._run, name="streamgate-replies", daemon=True)
        self._thread.start()
        return self

    def expect(self, request_id: str, waiter: Waiter) -> None:
        """Register before the request is sent, so its answer cannot arrive unclaimed."""
        with self._lock:
            self._waiters[request_id] = waiter

    def forget(self, request_id: str) -> None:
        with self._lock:
            self._waiters.pop(request_id, None)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def _run(self) -> None:
        while not self._stop.is_set():
            # not consume(500, timeout): librdkafka returns from that only once 500 records are in hand or
            # the timeout has passed, which held every answer up to 100 ms; wait for the first, then take
            # whatever else has arrived
            first = self._consumer.poll(0.1)
            if first is None:
                continue
            for msg in (first, *self._consumer.consume(500, timeout=0)):
                self._handle(msg)

    def _handle(self, msg: Message) -> None:
        if (error := msg.error()) is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("reply reader: %s", error)
            return
        topic = msg.topic() or ""
        try:
            record = self.codecs[topic].decode(msg.value() or b"")
        except EventDecodeError as exc:  # not ours to dead-letter (the writer's stage does): count and skip
            self.undecodable += 1
            log.warning("undecodable reply at %s[%s]@%s: %s", topic, msg.partition(), msg.offset(), exc)
            return
        kind: Kind = "final" if self.topics[topic] == "final" else "chunk"
        with self._lock:
            # a final is handed over once: a second final for the id (the answer of a redone dispatch,
            # when reading before commit) finds no waiter
            waiter = (self._waiters.pop if kind == "final" else self._waiters.get)(record["request_id"], None)
        if waiter is None:
            self.unclaimed += 1
            return
        waiter.on_event(ReplyEvent(kind, record))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._consumer.close()

