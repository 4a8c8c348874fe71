"""The request path inside the dispatcher: `requests` in, every stage's records out in its transactions.

Exactly once, per request, with no second hop:

- A routed request's request-path records (guarded, routed, verdicts, audit) are held with its dispatch
  and produced into the open transaction together with its answer, so they commit with the answer or
  not at all. A rejection, a dead letter or a dropped duplicate has nothing to wait for: its records go
  into the open transaction at once.
- Requests finish out of order (a cache hit overtakes a slow provider), so where a partition resumes is
  kept as the request path keeps it, in the claims changelog, in the same transaction: the lowest offset
  not finished, plus the offsets past it already finished (`streams.claims.position_record`). A restart
  resumes there and skips the finished ones; everything it redoes had nothing committed.
- Dedup claims are flushed into the transaction at each commit. A claim committed before its request's
  answer does not drop the request on replay: a claim names the offset that made it, and the same offset
  is decided again (`streams.pipeline.check_claim`).
- The dispatcher's answered-ids index (the responses topic) stays the final guard: a request id is never
  answered twice, even after a rebalance.
- On revoke, the open transaction (with the positions) is committed before the partitions go, so their
  next owner resumes from the truth. A killed worker's open transaction is aborted by its restarted
  incarnation's `init_transactions`, before the changelog is read back.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from functools import partial

from confluent_kafka import Consumer, Message, Producer, TopicPartition

from gateway_consumer.answer import DispatchDeps
from gateway_consumer.dispatch import Dispatcher
from gateway_consumer.dispatch import metrics as dispatch_metrics
from gateway_consumer.dispatch.loop import TXN_CALL_S, txn_linger_ms
from schemas.topics import Topic
from streamgate.config import Settings
from streamgate.kafka.clients import consumer_config, transactional_config
from streamgate.observability import Heartbeat, kafka_lag_stats
from streams.claims import BatchedClaims, position_record
from streams.io import Output, StageIO
from streams.loop import Resume, claims_topic, restore_claims, resume_at
from streams.metrics import StageMeter
from streams.pipeline import RequestPath, RequestPathDeps

#: The fused worker's transactional ids start with this (under the topic prefix; schemas/principals.yaml).
TRANSACTIONAL_PREFIX = "streamgate-gateway"


class FusedGateway(Dispatcher):
    """A dispatcher whose input is `requests`, decided in-process by the request path."""

    def __init__(self, settings: Settings, deps: RequestPathDeps, *, instance: str = "0",
                 keep_samples: bool = False, freeze_heap: bool = False,
                 heartbeat: Heartbeat | None = None) -> None:
        self.request_deps = deps
        super().__init__(settings, lambda: deps.policy.policy, instance=instance, keep_samples=keep_samples,
                         freeze_heap=freeze_heap, heartbeat=heartbeat)
        io = StageIO(settings)
        self.path = RequestPath(io, deps)
        self.sources = (io.names[Topic.REQUESTS],)
        self.routed_topic, self.rejected_topic = io.names[Topic.ROUTED], io.names[Topic.REJECTED]
        self.deadletter_topic = io.names[Topic.DEADLETTER]
        self.claims_topic = claims_topic(settings)
        self.claims = BatchedClaims({}, self._window_ms())
        self.meter = StageMeter("request_path", io.names)
        self.finished: dict[int, frozenset[int]] = {}  # partition -> offsets finished before a restart
        self.written: dict[int, tuple[int, tuple[int, ...]]] = {}  # partition -> last position written
        self.rejecting: dict[asyncio.Task[None], int] = {}  # rejections waiting to be answered -> partition
        self.now_ms = 0  # of the batch being decided
        self.outputs: list[Output] = []  # the batch's request-path records, for its metrics

    def _window_ms(self) -> int:
        return self.request_deps.policy.policy.validation.dedup_window_s * 1000

    def _clients(self, instance: str) -> tuple[Consumer, list[Producer]]:
        settings = self.settings
        group = settings.kafka.topic_prefix + settings.streams.group_id  # the request path's partitions
        consumer = Consumer(consumer_config(settings, group_id=group, role="gateway") | {
            "partition.assignment.strategy": "cooperative-sticky",
            "group.instance.id": f"{group}-{instance}"} | kafka_lag_stats(dispatch_metrics.C))
        name = f"{settings.kafka.topic_prefix}{TRANSACTIONAL_PREFIX}-{instance}"
        # answers in the transaction: 0.5 ms against 2, three interleaved pairs at 500/s (before answers
        # left the transaction): caller p50 31-179 against 53-322 ms, broker CPU within noise
        producers = [Producer(transactional_config(settings, transactional_id=f"{name}-{turn}",
                                                   client_id=f"{name}-{turn}", role="gateway")
                              | {"linger.ms": txn_linger_ms(settings, 0.5)}) for turn in "ab"]
        return consumer, producers

    # -- assignment ---------------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        parts = {tp.partition for tp in partitions}
        resume: dict[int, Resume] = {}
        if parts:  # cooperative rebalances also call this with nothing new
            resume = restore_claims(self.settings, self.claims_topic, parts, self.claims, role="gateway")
            self.finished.update((p, r.finished) for p, r in resume.items())
        consumer.incremental_assign(resume_at(partitions, resume))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Commit what was decided before the partitions go: their next owner reads the changelog."""
        if not partitions:
            return
        parts = {tp.partition for tp in partitions}
        for request_id, place in list(self.task_partition.items()):
            if place[1] in parts:  # its held records were never produced: the new owner redoes it
                self.in_flight[request_id].cancel()
        for rejecting, partition in list(self.rejecting.items()):
            if partition in parts:
                rejecting.cancel()
        self._commit_now()
        self._forget(parts)
        super()._on_lost(consumer, partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._forget({tp.partition for tp in partitions})
        super()._on_lost(consumer, partitions)

    def _forget(self, parts: set[int]) -> None:
        self.claims.forget(parts)
        for p in parts:
            self.finished.pop(p, None)
            self.written.pop(p, None)

    def _commit_now(self) -> None:
        """Commit the open transaction before returning (on the loop thread, in a rebalance callback)."""
        if self.commit_future is not None:
            deadline = time.monotonic() + TXN_CALL_S
            while not self.commit_future.done() and time.monotonic() < deadline:
                self.replies.poll()  # it may wait for its answers' delivery reports, served here
                time.sleep(0.001)
            self.commit_future.result(max(0.0, deadline - time.monotonic()))  # commits stay sequential
        self._before_commit()
        if not self.produced:
            return
        if self.replies.immediate:
            self.replies.deliver_now(TXN_CALL_S)
        self.producer.commit_transaction(TXN_CALL_S)
        self.producer.begin_transaction()
        self.produced = 0

    # -- requests in --------------------------------------------------------------------------------
    def _accept_batch(self, batch: list[Message], deps: DispatchDeps) -> None:
        began = time.perf_counter()
        self.now_ms = int(time.time() * 1000)
        self.outputs = []
        for msg in batch:
            self._accept(msg, deps)
        self.meter.batch(len(batch), self.outputs, time.perf_counter() - began)

    def _accept(self, msg: Message, deps: DispatchDeps) -> None:
        if not self._consumable(msg):
            return
        topic, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
        place = (topic, partition)
        self.tracker.add(place, offset)
        self.stats.counts["consumed"] += 1
        if offset in self.finished.get(partition, ()):  # committed before a restart: never twice
            self.tracker.done(place, offset)
            self.stats.counts["finished_before_restart"] += 1
            return
        outputs = self.path.process(msg.value() or b"", msg.key(), partition, offset, self.claims.duplicate,
                                    self.now_ms)
        self.outputs += outputs
        event = self.path.routed  # the routed record's event, not decoded again
        if event is None:
            rejected = next((o for o in outputs if o.topic == self.rejected_topic and o.value), None)
            if rejected is None:  # a dead letter or a dropped duplicate: nothing to answer
                self._produce_all(outputs, partition)
                self.tracker.done(place, offset)
                return
            rejecting = asyncio.create_task(self._reject(rejected, outputs, place, offset))
            rejecting.add_done_callback(self._failed)
            self.rejecting[rejecting] = partition
            rejecting.add_done_callback(self._rejected)
            return
        key = msg.key() or event["request_id"].encode()  # as the request path keys its records
        request_id = event["request_id"]
        if request_id in self.answered or request_id in self.in_flight:
            self.tracker.done(place, offset)  # answered (or being answered) already: never twice
            self.stats.counts["duplicates_skipped"] += 1
            return
        reply_to = self.replies.reply_to(event, None, routed=True)
        held: Callable[[], None] = partial(self._produce_all, outputs, partition)
        task = asyncio.create_task(self._answer(event, deps, place, offset, key, time.perf_counter(),
                                                reply_to, with_answer=held))
        task.add_done_callback(self._failed)
        self.in_flight[request_id] = task
        self.task_partition[request_id] = place

    def _rejected(self, task: asyncio.Task[None]) -> None:
        self.rejecting.pop(task, None)

    async def _reject(self, rejected: Output, outputs: list[Output], place: tuple[str, int],
                      offset: int) -> None:
        """A rejection for its caller (the request path's `rejected` Response), unless its request id
        was answered already or is being answered: a resent request rejected before its dedup claim (an
        unknown team, a key that does not match, its deadline passed) is rejected again, and answered
        once, as the staged dispatcher does. Its records (dead letter, audit) commit with the answer,
        or alone when it is not answered again."""
        response = self.rejected_codec.decode(rejected.value or b"")
        request_id, partition = response["request_id"], place[1]
        await self.answered.cover(partition, int(response.get("created_at") or 0))
        self._produce_all(outputs, partition)
        if request_id in self.answered or request_id in self.in_flight:  # a resend the deadline overtook
            self.stats.counts["duplicates_skipped"] += 1
        else:
            self.answered.add(request_id)
            encoded = self._produce(Topic.RESPONSES, partition, rejected.key, response)
            reply_to = self.replies.reply_to(response, rejected.headers, routed=False)
            self._reply(reply_to, rejected.key, response, encoded)
            self.stats.counts["answered_rejected"] += 1
        self.tracker.done(place, offset)

    def _produce_all(self, outputs: list[Output], partition: int) -> None:
        """A request's records, on its own partition: a transaction then touches each topic's partitions
        of the requests it carries, not more (every partition costs a commit marker). Dead letters have
        fewer partitions: keyed."""
        for o in outputs:
            if o.partition is not None:
                part = o.partition
            else:
                part = -1 if o.topic == self.deadletter_topic else partition
            self._produce_raw(o.topic, o.value, o.key, part, o.headers)

    # -- what rides with each commit --------------------------------------------------------------------
    def _before_commit(self) -> None:
        """The dedup claims made since the last commit, and each partition's position where it moved."""
        self.claims.window_ms = self._window_ms()  # the policy may change live
        for partition, key, claims in self.claims.flush(int(time.time() * 1000)):
            record = None if claims is None else json.dumps(claims).encode()
            self._produce_raw(self.claims_topic, record, key, partition)
        for (_, partition), offsets in self.tracker.partitions.items():
            point = offsets.resume_point()  # also while the partition's first request is still open
            if point is None:
                continue
            finished = tuple(offsets.finished_ahead())
            if self.written.get(partition) != (point, finished):
                key, record = position_record(partition, point, finished)
                self._produce_raw(self.claims_topic, record, key, partition)
                self.written[partition] = (point, finished)
