"""Answers for callers who wait (a front door, a GatewayClient): the reply partition, and streamed pieces.

A request names `reply_partition`, the partition of `replies` its caller reads. Then:

- the final Response goes to `replies`, that partition; it is also the end of a streamed answer. When
  callers read before the commit (`client.answer_before_commit`, the default) it goes out at once from
  this module's producer, outside the transaction: a transaction adds nothing for a read_uncommitted
  reader (an aborted answer is visible to it either way), and inside one the first answers of every
  transaction waited for its partitions to be added (AddPartitionsToTxn; docs/benchmarks.md, latency).
  Its transaction commits only once the broker has acknowledged it (`mark` / `wait_delivered`): an
  answer still in this producer's queue when a committed process is killed would be lost to its caller
  (its request is committed, so never redone; the CI run of stop 36 lost 116 of 4,000 this way).
  Otherwise it rides in the SAME transaction as its `responses` record (the dispatch loop produces it),
  so a read_committed waiter sees exactly the committed answer, once;
- a streamed request (`params.stream`) gets its pieces as ResponseChunk records on `replies.chunks`, same
  partition, from this module's own producer: idempotent, NOT transactional and `linger.ms` 0, so pieces
  reach the caller while the answer is still being written. Every piece of one dispatch is acknowledged
  by the broker before the final Response is produced into the transaction, so a caller reading both
  topics finds the pieces in the log before the answer that ends them.

`dispatch_id` names one dispatch of a request by one process; `seq` counts 0, 1, 2... within it. A
dispatcher killed mid-stream leaves its pieces in `replies.chunks` (not transactional: they cannot be
taken back) and the request is dispatched again by its successor under a new dispatch_id, from seq 0;
the final Response still comes exactly once. A caller that has shown pieces of an abandoned dispatch
must go by the final Response (whose content is the complete answer).

A rejection from the request path (on `requests.rejected`) is a Response, which has no field for the
reply partition: the request path puts it in the record's Kafka header `reply_partition` (ASCII
digits), and the dispatcher reads it from there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from schemas import make_codec
from schemas.events import REPLY_PARTITION_HEADER
from schemas.topics import Topic
from streamgate.config import Settings
from streamgate.kafka.clients import producer_config
from streamgate.observability.metrics import ERRORS

log = logging.getLogger("streamgate.dispatch.replies")
#: Final answers the broker refused to take for their waiting callers (they stay on `responses`).
_UNDELIVERED = ERRORS.labels("dispatcher", "dispatch", "reply_undelivered")

#: How long a request waits for its pieces to be acknowledged before its final answer goes out anyway.
CHUNK_ACK_S = 10.0
#: An unknown reply partition (beyond the topic's partitions) re-reads the topic's metadata this often.
METADATA_REFRESH_S = 30.0


def header_reply_partition(headers: Any) -> int | None:
    """The reply partition a request path's rejection carries in its headers (confluent-kafka's
    list of (name, value) pairs), or None."""
    for name, value in headers or ():
        if name == REPLY_PARTITION_HEADER and value is not None:
            try:
                return int(value)
            except ValueError:
                return None
    return None


class Replies:
    """The dispatcher's side of request-reply: which reply partitions exist, and the chunk producer."""

    def __init__(self, settings: Settings, topics: dict[Topic, str], client_id: str) -> None:
        self.topic, self.chunks_topic = topics[Topic.REPLIES], topics[Topic.REPLY_CHUNKS]
        #: final answers go out at once from this producer, not in the dispatcher's transaction
        self.immediate = settings.client.answer_before_commit
        self.undelivered = 0  # final answers the broker did not take (their callers time out)
        self._answers: list[dict[str, Any]] = []  # produced at the end of this event-loop turn
        self.chunk_codec = make_codec(self.chunks_topic, "ResponseChunk", settings.schema_registry.url)
        self.producer = Producer(producer_config(settings, client_id=client_id, role="dispatcher") | {
            "linger.ms": 0, "compression.type": "none"})
        self._partitions: int | None = None  # of replies and replies.chunks alike (the fewer)
        self._checked = 0.0
        self.invalid = 0  # requests whose reply partition does not exist (answered on `responses` only)
        # per reply partition: answers handed to the producer, and their delivery reports served (in
        # order within a partition), so a commit can wait for the answers produced before it
        self._handed: dict[int, int] = {}
        self._reported: dict[int, int] = {}
        self._reports = threading.Condition()

    def reply_to(self, event: dict[str, Any], headers: Any, routed: bool) -> int | None:
        """Where the caller of this routed request (or rejection) waits, when that partition exists."""
        wanted = event.get("reply_partition") if routed else header_reply_partition(headers)
        if wanted is None:
            return None
        if wanted < 0 or wanted >= self._count(wanted):
            self.invalid += 1
            if self.invalid & (self.invalid - 1) == 0:  # the 1st, 2nd, 4th, 8th...: no flood of lines
                log.warning("request %s names reply partition %s, which %s does not have: answered on "
                            "responses only (%d such requests so far)", event.get("request_id"), wanted,
                            self.topic, self.invalid)
            return None
        return int(wanted)

    def _count(self, wanted: int) -> int:
        """Partitions of the reply topics; read again (at most every 30 s) when asked beyond them."""
        now = time.monotonic()
        stale = now - self._checked > METADATA_REFRESH_S
        if self._partitions is None or (wanted >= self._partitions and stale):
            self._checked = now
            try:
                meta = self.producer.list_topics(timeout=5).topics
            except Exception as exc:  # a metadata timeout: keep what was known
                log.warning("reading the reply topics' partitions failed: %s", exc)
                return self._partitions or 0
            counts = [len(meta[t].partitions) if t in meta and meta[t].error is None else 0
                      for t in (self.topic, self.chunks_topic)]
            self._partitions = min(counts)
        return self._partitions

    def answer(self, value: bytes, key: bytes | None, partition: int) -> None:
        """A final answer for the caller waiting on `partition` (only when `immediate`), sent with the
        others of this turn of the event loop: answers finish in bursts, and one produce request per
        answer cost the broker ~10% more CPU per request at 500/s (linger.ms 0.5 instead delayed every
        answer by ~1 ms)."""
        self._answers.append({"value": value, "key": key, "partition": partition})
        if len(self._answers) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.send_answers)
            except RuntimeError:  # no event loop: nothing to batch with
                self.send_answers()

    def send_answers(self) -> None:
        """Hand this turn's answers to the producer at once, so they leave in one produce request."""
        answers, self._answers = self._answers, []
        by_partition: dict[int, list[dict[str, Any]]] = {}
        for a in answers:
            by_partition.setdefault(a.pop("partition"), []).append(a)
        for partition, batch in by_partition.items():
            self._send_batch(partition, batch)

    def _send_batch(self, partition: int, batch: list[dict[str, Any]]) -> None:
        while batch:
            # per call: confluent-kafka 2.16 ignores a message's own "partition" (keys chose instead)
            self.producer.produce_batch(self.topic, batch, partition=partition,
                                        on_delivery=self._answer_delivered)
            full = []  # the producer's queue was full: these wait for room
            for a in batch:
                if (err := a.pop("_error", None)) is None:
                    self._handed[partition] = self._handed.get(partition, 0) + 1
                    continue
                if err.code() == KafkaError._QUEUE_FULL:
                    full.append(a)
                else:
                    self._answer_failed(err, a["key"])
            batch = full
            if batch:
                self.producer.poll(0.05)

    def _answer_delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._answer_failed(err, msg.key())
        partition = msg.partition() or 0
        with self._reports:
            self._reported[partition] = self._reported.get(partition, 0) + 1
            self._reports.notify_all()

    def mark(self) -> dict[int, int]:
        """The answers handed over so far, per partition (this turn's sent first): what a transaction
        about to commit must not overtake."""
        self.send_answers()
        return dict(self._handed)

    def wait_delivered(self, mark: dict[int, int], timeout_s: float) -> bool:
        """Block until every answer up to `mark` has its delivery report (served by `poll` on the
        dispatcher's loop thread, so call this from another); False after `timeout_s`."""
        with self._reports:
            return self._reports.wait_for(lambda: self.reported(mark), timeout_s)

    def reported(self, mark: dict[int, int]) -> bool:
        return all(self._reported.get(p, 0) >= n for p, n in mark.items())

    def deliver_now(self, timeout_s: float) -> None:
        """Every answer handed over, acknowledged before returning (on the loop thread: a commit
        outside the loop, in a rebalance callback)."""
        self.send_answers()
        if left := self.producer.flush(timeout_s):
            log.warning("%d answers or streamed pieces unacknowledged after %.0f s", left, timeout_s)

    def _answer_failed(self, err: KafkaError, key: bytes | None) -> None:
        self.undelivered += 1
        _UNDELIVERED.inc()
        log.warning("the answer to %r for its waiting caller was not delivered: %s (it stays on "
                    "responses)", (key or b"").decode(errors="replace"), err)

    def stream(self, event: dict[str, Any], reply_to: int | None, key: bytes | None) -> ChunkStream | None:
        """The chunk stream of a routed request, when it asked for a stream and its caller waits."""
        if reply_to is None or not event["params"].get("stream"):
            return None
        return ChunkStream(self, event["request_id"], key, reply_to)

    def poll(self) -> None:
        self.producer.poll(0)

    def close(self) -> None:
        self.send_answers()
        if left := self.producer.flush(10):
            log.warning("%d streamed pieces undelivered at shutdown", left)


class ChunkStream:
    """The pieces of one dispatch of one request, numbered, to its reply partition."""

    def __init__(self, replies: Replies, request_id: str, key: bytes | None, partition: int) -> None:
        self.replies, self.request_id, self.partition = replies, request_id, partition
        self.key = key or request_id.encode()
        self.dispatch_id = str(uuid.uuid4())
        self._sent, self._unacked, self.failed = 0, 0, 0
        self._all_acked: asyncio.Future[None] | None = None

    @property
    def sent(self) -> int:
        return self._sent

    def send(self, text: str, tool_calls: list[dict[str, Any]] | None, target: dict[str, Any]) -> None:
        first = self._sent == 0
        record = {"request_id": self.request_id, "dispatch_id": self.dispatch_id, "seq": self._sent,
                  "delta": text, "tool_calls_json": json.dumps(tool_calls) if tool_calls else None,
                  "provider": target["provider"] if first else None,
                  "model": target["model"] if first else None, "created_at": int(time.time() * 1000)}
        value = self.replies.chunk_codec.encode(record)
        producer = self.replies.producer
        while True:
            try:
                producer.produce(self.replies.chunks_topic, value, self.key, partition=self.partition,
                                 on_delivery=self._acked)
                break
            except BufferError:
                producer.poll(0.05)
        self._sent += 1
        self._unacked += 1

    def _acked(self, err: KafkaError | None, _msg: Message) -> None:
        self._unacked -= 1
        if err is not None:
            self.failed += 1
            log.warning("a streamed piece of %s was not delivered: %s", self.request_id, err)
        if self._unacked == 0 and self._all_acked is not None and not self._all_acked.done():
            self._all_acked.set_result(None)

    async def delivered(self) -> None:
        """Until the broker has every piece sent so far (the final answer must not overtake them)."""
        if self._unacked == 0:
            return
        self._all_acked = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._all_acked), CHUNK_ACK_S)
        except TimeoutError:
            log.warning("%d streamed pieces of %s unacknowledged after %.0f s; answering anyway",
                        self._unacked, self.request_id, CHUNK_ACK_S)
