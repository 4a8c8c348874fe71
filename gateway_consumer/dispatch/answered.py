"""Request ids already answered, so a replayed or re-routed request is not answered twice.

Two sources of repeats: a dispatcher restart replays requests after the last committed offset whose
answers were already committed (they rode in a transaction with an earlier commit point), and the
at-least-once request path may route one request twice — also long after the first copy was answered,
e.g. when it replays its own input after a crash or a broker restart (chaos run seed 11: requests
answered by a dispatcher that was then killed were routed again 88 s later, to its successor).

So "known" is kept per responses partition as a time: every committed answer on the partition whose
timestamp is at or after `since_ms` is in the set. A request may only be answered once its partition is
known back to the request's `created_at` (less a clock-skew margin): an earlier answer to it cannot be
older than the request. The first request on a newly assigned partition reads that far back, an older
one reads further back; fresh traffic finds its partition known already and waits for nothing.

Reading happens on a thread while the dispatch loop goes on committing: the first read of a partition
waits for transactions still open there (its end is the high watermark, not the last stable offset),
and the dispatcher's own open transaction must be able to commit meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from schemas.codec import TopicCodec
from schemas.errors import EventDecodeError
from streamgate.config import Settings
from streamgate.kafka.clients import consumer_config, group_name
from streamgate.kafka.replay import high_watermarks

log = logging.getLogger("streamgate.dispatch")

#: How far an answer's timestamp (the dispatcher's clock) may lie before its request's `created_at` (the
#: client's clock): clock skew margin.
SEED_MARGIN_MS = 60_000
#: A read goes this much further back than the request needs: a replay's requests come roughly in
#: creation order, so the next slightly older one finds its answers known instead of reading again.
READ_SLACK_MS = 30_000
#: The furthest back a request makes its partition be read: bounds what a bogus `created_at` costs.
#: A request re-routed later than this after its first answer would be answered again.
MAX_LOOKBACK_MS = 3_600_000
#: A first read waits this long for transactions open on the partition to end (a dead producer's
#: transaction is aborted by the broker after its 60 s timeout); then the dispatcher gives up and
#: exits, since answering without knowing could answer twice.
READ_TIMEOUT_S = 150.0
T = TypeVar("T")


class AnsweredIds:
    """A bounded, insertion-ordered set of request ids."""

    def __init__(self, capacity: int = 1_000_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, request_id: str) -> None:
        self._ids[request_id] = None
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)


class AnswersUnknownError(RuntimeError):
    """The committed answers of a partition could not be read completely: answering could answer twice."""


_RETRIABLE = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
              KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._TIMED_OUT}


def _patiently(call: Callable[[], T], attempts: int = 20) -> T:
    """A metadata call, retried while the cluster is still electing leaders (a topic just created, a
    broker just restarted)."""
    for attempt in range(attempts):
        try:
            return call()
        except KafkaException as exc:
            error = exc.args[0]
            if attempt == attempts - 1 or not (error.retriable() or error.code() in _RETRIABLE):
                raise
            time.sleep(min(0.1 * 2 ** attempt, 2.0))
    raise AssertionError("unreachable")


def need_since_ms(created_at_ms: int, now_ms: int) -> int:
    """How far back a request's partition must be known before the request may be answered."""
    if created_at_ms > now_ms + SEED_MARGIN_MS:  # a clock far ahead says nothing: look back the most
        return now_ms - MAX_LOOKBACK_MS
    return max(created_at_ms - SEED_MARGIN_MS, now_ms - MAX_LOOKBACK_MS)


def read_answers(settings: Settings, responses: str, partition: int, since_ms: int, until: int | None,
                 codec: TopicCodec, into: AnsweredIds, timeout_s: float = READ_TIMEOUT_S) -> tuple[int, int]:
    """Add the ids of the committed answers on `partition` from the first with a timestamp >= `since_ms`
    up to offset `until` (exclusive), or to the log's end when None, waiting for transactions open there.
    Returns the offset reading started at (below it nothing was read) and how many answers it read;
    raises AnswersUnknownError."""
    group = group_name(settings, f"sg-seed-{uuid.uuid4().hex[:8]}")
    reader = Consumer(consumer_config(settings, group_id=group,
                                    role="dispatcher"))
    try:
        tp = TopicPartition(responses, partition)
        end = (high_watermarks(settings, responses, [partition], _patiently, role="dispatcher")[partition]
               if until is None
               else until)
        [first] = _patiently(lambda: reader.offsets_for_times(
            [TopicPartition(responses, partition, max(since_ms, 0))], timeout=10))
        if first.error is not None:
            raise AnswersUnknownError(f"{responses}[{partition}]: no offset for {since_ms}: {first.error}")
        start = end if first.offset < 0 else min(first.offset, end)  # -1: nothing that recent
        if start >= end:
            return start, 0
        reader.assign([TopicPartition(responses, partition, start)])
        deadline, added = time.monotonic() + timeout_s, 0
        while True:
            for msg in reader.consume(1000, timeout=0.5):
                if msg.error() is not None or (msg.offset() or 0) >= end:
                    continue
                try:
                    into.add(codec.decode(msg.value() or b"")["request_id"])
                    added += 1
                except EventDecodeError:
                    pass  # not an answer we can read; it cannot be one of ours either
            # read_committed: the position passes `end` once every transaction below it has ended
            [at] = reader.position([tp])
            if at.offset >= end:
                return start, added
            if time.monotonic() > deadline:
                raise AnswersUnknownError(f"{responses}[{partition}]: at offset {at.offset} of {end} after "
                                     f"{timeout_s:.0f} s (a transaction open that long?)")
    finally:
        reader.close()


@dataclass(frozen=True)
class Known:
    """Every committed answer on the partition with a timestamp >= since_ms is in the set; reading began
    at offset `start` (an earlier `since_ms` reads from its own start up to here)."""

    since_ms: int
    start: int


class AnswerIndex:
    """The answered ids, and per responses partition how far back they are known (see the module)."""

    def __init__(self, settings: Settings, responses: str, codec: TopicCodec) -> None:
        self.settings, self.responses, self.codec = settings, responses, codec
        self.ids = AnsweredIds()
        self.known: dict[int, Known] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._generation: dict[int, int] = {}
        # its own thread: a read may wait on open transactions, and must not hold up the commits
        self._thread = ThreadPoolExecutor(max_workers=2, thread_name_prefix="answers")

    def __contains__(self, request_id: object) -> bool:
        return request_id in self.ids

    def add(self, request_id: str) -> None:
        self.ids.add(request_id)

    def covers(self, partition: int, created_at_ms: int) -> bool:
        known = self.known.get(partition)
        return known is not None and known.since_ms <= need_since_ms(created_at_ms, _now_ms())

    def forget(self, partition: int) -> None:
        """The partition went to another instance: what it answers from now on is not in our set."""
        self.known.pop(partition, None)
        self._generation[partition] = self._generation.get(partition, 0) + 1

    async def cover(self, partition: int, created_at_ms: int) -> None:
        """Return once the partition is known back to what `created_at_ms` needs (read if need be)."""
        lock = self._locks.setdefault(partition, asyncio.Lock())
        while not self.covers(partition, created_at_ms):
            async with lock:  # one read per partition at a time; who waited finds it done
                if not self.covers(partition, created_at_ms):
                    await self._read(partition, need_since_ms(created_at_ms, _now_ms()) - READ_SLACK_MS)

    async def _read(self, partition: int, since: int) -> None:
        known, generation = self.known.get(partition), self._generation.get(partition, 0)
        began = time.monotonic()
        start, added = await asyncio.get_running_loop().run_in_executor(
            self._thread, partial(read_answers, self.settings, self.responses, partition, since,
                                  None if known is None else known.start, self.codec, self.ids))
        if self._generation.get(partition, 0) != generation:
            return  # forgotten while reading (another topic's partition p revoked): read it again
        self.known[partition] = Known(since, start)
        log.info("responses[%d] known since %s: %d answers read in %.1f s%s", partition,
                 time.strftime("%H:%M:%S", time.localtime(since / 1000)), added,
                 time.monotonic() - began, "" if known is None else " (further back)")

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)


def _now_ms() -> int:
    return int(time.time() * 1000)
