"""The request path on librdkafka transactions (the default engine): exactly-once, one pass per batch.

Why not faust for this stage: its consumer path cost as much CPU per event as the stage logic itself
(py-spy, docs/benchmarks.md), and its `exactly_once` mode stalled after a kill -9 ("Not in the middle
of a transaction", upstream #517/#323). Here one confluent-kafka consumer hands batches to the same
:class:`streams.pipeline.RequestPath` the faust agent calls; every output, the batch's dedup claims
(streams/claims.py, in the changelog topic the faust table used) and the consumed offsets commit in one
Kafka transaction. A kill -9 aborts the open transaction: downstream (read_committed) never sees its
outputs, and the batch is decided again from the same claims. On assignment a partition's claims are
read back from the changelog before its first record is processed.

Two transactional producers take turns, as in the dispatcher: while one commits (on a thread), the
other's transaction is already open and takes the next decisions at once. With one producer they
waited for the commit, and its next transaction was often refused (CONCURRENT_TRANSACTIONS) until the
previous one's markers were written: back-to-back transactions had a p99 of 27-43 ms against 11-15 ms
taking turns (measured here on a loaded machine). Commits stay strictly sequential.

The consumed positions travel in that changelog too (a `next-offset/<partition>` record per transaction
and partition, on the claims' own partition), not as consumer-group offsets in the transaction: offsets
add two coordinator round trips and a marker on `__consumer_offsets` to every transaction, which made a
one-record transaction ~4 ms slower and cost the broker 4-5x its CPU (`streamgate bench broker-cost`).
On assignment the position read back from the changelog is where consumption resumes (the group's
committed offset when there is none yet, e.g. on the first start after an upgrade). The group offsets are
still committed, outside the transaction and at most every OFFSETS_EVERY_S, for lag monitoring only; they
trail the changelog's positions, never lead them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition

from schemas.topics import Topic
from streamgate.config import Role, Settings
from streamgate.kafka.clients import consumer_config, transactional_config
from streamgate.kafka.replay import read_to_end
from streamgate.kafka.stuck import committed_offsets_unknown, exit_if_stuck
from streamgate.observability import Heartbeat, kafka_lag_stats
from streamgate.observability.metrics import LATENCY
from streams.claims import BatchedClaims, position_record, read_finished, read_position
from streams.io import Output, StageIO
from streams.metrics import C, StageMeter
from streams.pipeline import RequestPath, RequestPathDeps

log = logging.getLogger("streamgate.streams")
BATCH = 500
#: A transaction not committed within this many seconds ends the process (see `_settle`).
COMMIT_DEADLINE_S = 10.0
#: How long the loop blocks for records while a commit is in flight or decisions wait for one: it must
#: notice the commit's end soon, to open the next transaction and commit what waited (~1 ms).
BUSY_POLL_S = 0.001
#: ... and while nothing is pending: a record arriving ends the wait at once.
IDLE_POLL_S = 0.05
_UNASSIGNED = -1  # librdkafka: let the partitioner choose
#: How often the group's offsets are committed (outside the transactions, for lag monitoring only).
OFFSETS_EVERY_S = 1.0


def claims_topic(settings: Settings) -> str:
    """The dedup claims' compacted changelog: the name faust gives table `dedup` of the app, so the
    claims survive a switch of engine."""
    return f"{settings.kafka.topic_prefix}{settings.streams.group_id}-dedup-changelog"


@dataclass(frozen=True)
class Resume:
    """Where a requests partition's consumption resumes, from its changelog."""

    offset: int
    #: offsets past it whose outcomes are committed already (only the fused worker finishes out of order)
    finished: frozenset[int] = frozenset()


def restore_claims(settings: Settings, topic: str, parts: set[int], claims: BatchedClaims, *,
                   role: Role) -> dict[int, Resume]:
    """Load the claims of newly assigned requests partitions from their changelog, and return where each
    resumes (absent: no position recorded yet, the group's committed offset applies)."""
    resume: dict[int, Resume] = {}
    loaded = 0
    for msg in read_to_end(settings, topic, parts, role=role):
        key, value = msg.key() or b"", msg.value()
        if (position := read_position(key, value)) is not None:
            partition, offset = position
            if offset is None:
                resume.pop(partition, None)
            else:
                resume[partition] = Resume(offset, frozenset(read_finished(value)))
            continue
        claims.load(key, None if value is None else json.loads(value))
        loaded += 1
    log.info("assigned requests partitions %s; %d claim records loaded; resuming at %s", sorted(parts),
             loaded, {p: resume[p].offset if p in resume else "group offset" for p in sorted(parts)})
    return resume


def resume_at(partitions: list[TopicPartition], resume: dict[int, Resume]) -> list[TopicPartition]:
    """The partitions to assign, each at its changelog position where there is one (else at the group's
    committed offset, the default of an offset-less TopicPartition)."""
    return [TopicPartition(tp.topic, tp.partition, resume[tp.partition].offset)
            if tp.partition in resume else tp for tp in partitions]


class TransactionalRequestPath:
    """requests -> RequestPath -> routed / rejected / guarded / verdicts / audit / dead letters."""

    def __init__(self, settings: Settings, deps: RequestPathDeps, *, instance: str = "0",
                 heartbeat: Heartbeat | None = None) -> None:
        self.settings, self.deps = settings, deps
        io = StageIO(settings)
        self.path = RequestPath(io, deps)
        self.source = io.names[Topic.REQUESTS]
        self.claims_topic = claims_topic(settings)
        self.claims = BatchedClaims({}, self._window_ms())
        self.meter = StageMeter("request_path", io.names)
        group = settings.kafka.topic_prefix + settings.streams.group_id
        self.consumer = Consumer(consumer_config(settings, group_id=group, role="streams") | {
            "partition.assignment.strategy": "cooperative-sticky",
            "group.instance.id": f"{group}-{instance}"} | kafka_lag_stats(C))
        # murmur2_random: Java's partitioner, as faust's producer chose, so a conversation keeps its
        # partition across engines. The first producer keeps the id of the single producer before it,
        # so its init_transactions still fences an older incarnation.
        self.producers = [Producer(transactional_config(settings, transactional_id=name, client_id=name,
                                                        role="streams") | {"partitioner": "murmur2_random"})
                          for name in (f"{group}-{instance}", f"{group}-{instance}-b")]
        self.producer = self.producers[0]  # the one whose transaction is open
        self.positions: dict[int, int] = {}  # partition -> next offset to consume (uncommitted)
        self.owned: set[int] = set()
        self.running = True
        self.heartbeat = heartbeat or Heartbeat(C, settings.metrics.stale_after_s)
        self.events = 0
        self.commits, self.commit_s = 0, 0.0
        self.committing: threading.Thread | None = None
        self.commit_error: KafkaException | None = None
        self.committed: dict[int, int] = {}  # partition -> position committed (changelog), not yet published
        self.in_commit: dict[int, int] = {}  # the positions of the commit in flight
        self.published_at = 0.0
        self.commit_time = LATENCY.labels(C, "commit")

    def _window_ms(self) -> int:
        return self.deps.policy.policy.validation.dedup_window_s * 1000

    # -- assignment ---------------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        parts = {tp.partition for tp in partitions}
        resume: dict[int, Resume] = {}
        if parts:  # cooperative rebalances also call this with nothing new
            resume = restore_claims(self.settings, self.claims_topic, parts, self.claims, role="streams")
            self.owned |= parts
        consumer.incremental_assign(resume_at(partitions, resume))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if not partitions:
            return
        self._commit()  # what was decided lands with its offsets; the new owner resumes there
        parts = {tp.partition for tp in partitions}
        self.owned -= parts
        for p in parts:
            self.positions.pop(p, None)
            self.committed.pop(p, None)
        self.claims.forget(parts)
        consumer.incremental_unassign(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """The group moved on without us (session timed out): our open transaction can no longer commit
        and the decisions in memory belong to another member now."""
        log.error("lost requests partitions %s; exiting to rejoin", sorted(tp.partition for tp in partitions))
        if self.committing is not None:
            self.committing.join(COMMIT_DEADLINE_S)
        for producer in self.producers:
            with contextlib.suppress(KafkaException):  # none open: the next incarnation aborts it anyway
                producer.abort_transaction(30)
        raise SystemExit(3)

    # -- the loop -----------------------------------------------------------------------------------
    def run(self, *, idle_exit_s: float | None = None) -> int:
        """Consume until SIGTERM/SIGINT (or `idle_exit_s` without events); returns events processed."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self._halt())
        for producer in self.producers:  # fences a previous incarnation and aborts its transactions
            producer.init_transactions(60)
        self.producer.begin_transaction()
        self.consumer.subscribe([self.source], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_lost)
        interval = self.settings.streams.commit_interval_ms / 1000
        next_commit = last_event = time.monotonic()
        while self.running:
            if self.committing is not None and not self.committing.is_alive():
                self._settle()
            # a commit in flight or decisions waiting for one: look back soon, to start the next commit
            # as soon as this one ends (a caller waits for it); idle: block until a record arrives
            busy = self.committing is not None or bool(self.positions)
            wait = BUSY_POLL_S if busy else IDLE_POLL_S
            if self.committing is None and self.positions:
                wait = min(wait, max(next_commit - time.monotonic(), 0.0))
            batch = self._consume(wait)
            self.heartbeat.beat()
            if batch:
                self._process(batch)
                last_event = time.monotonic()
            if self.committing is None and time.monotonic() >= next_commit:
                self._start_commit()
                next_commit = time.monotonic() + interval
            if idle_exit_s is not None and time.monotonic() - last_event > idle_exit_s:
                break
        self._commit()
        self.consumer.close()
        return self.events

    def _halt(self) -> None:
        self.running = False

    def _consume(self, timeout: float) -> list[Message]:
        """What has arrived, returned as soon as one record is there (at most `timeout` s of waiting).

        Not `consume(BATCH, timeout)`: librdkafka returns from that only once BATCH records are in hand
        or the timeout passed, so at moderate rates every batch waited the whole timeout (50 ms each,
        measured: docs/benchmarks.md, latency)."""
        first = self.consumer.poll(timeout)
        if first is None:
            return []
        return [first, *self.consumer.consume(BATCH - 1, timeout=0)]

    def _process(self, batch: list[Message]) -> None:
        began = time.perf_counter()
        now_ms = int(time.time() * 1000)
        self.claims.window_ms = self._window_ms()  # the policy may change live
        outputs: list[Output] = []
        process, duplicate = self.path.process, self.claims.duplicate
        for msg in batch:
            if (error := msg.error()) is not None:
                if committed_offsets_unknown(error):
                    log.error("%s; exiting for a restart", error.str())
                    raise SystemExit(3)
                log.warning("consume error: %s", error)
                continue
            partition, offset = msg.partition(), msg.offset()
            assert partition is not None and offset is not None
            if partition not in self.owned:  # revoked while the batch was in hand: its new owner decides
                continue
            outputs += process(msg.value() or b"", msg.key(), partition, offset, duplicate, now_ms)
            self.positions[partition] = offset + 1
            self.events += 1
        for partition, key, value in self.claims.flush(now_ms):
            record = None if value is None else json.dumps(value).encode()
            outputs.append(Output(self.claims_topic, key, record, partition))
        self._produce(outputs)  # into the open transaction, with the positions now recorded
        self.meter.batch(len(batch), outputs, time.perf_counter() - began)

    def _produce(self, outputs: list[Output]) -> None:
        produce = self.producer.produce
        for o in outputs:
            partition = _UNASSIGNED if o.partition is None else o.partition
            while True:
                try:
                    produce(o.topic, o.value, o.key, partition=partition, headers=o.headers)
                    break
                except BufferError:  # the local queue is full: let it drain
                    self.producer.poll(0.05)

    # -- transactions: committed on a thread while the loop decides the next batches ------------------
    def _start_commit(self) -> None:
        """Commit the open transaction (its outputs and the positions that produced them) on a thread,
        and open the other producer's at once (its last commit, the one before, has ended). Committing
        waits for the broker (flush, markers); librdkafka releases the GIL meanwhile, so the loop goes on
        deciding into the new transaction."""
        if not self.positions:
            return
        self._produce([Output(self.claims_topic, *position_record(p, o), p)
                       for p, o in self.positions.items()])
        self.in_commit, self.positions = self.positions, {}
        closing = self.producer
        self.producer = self.producers[1] if closing is self.producers[0] else self.producers[0]
        self.producer.begin_transaction()
        self.commit_error = None
        self.committing = threading.Thread(target=self._finish, args=(closing, time.perf_counter()),
                                           name="commit", daemon=True)
        self.committing.start()

    def _finish(self, closing: Producer, began: float) -> None:
        try:
            with exit_if_stuck(COMMIT_DEADLINE_S, "request-path transaction commit"):
                closing.commit_transaction(COMMIT_DEADLINE_S)
        except KafkaException as exc:
            self.commit_error = exc
            return
        took = time.perf_counter() - began
        self.commits, self.commit_s = self.commits + 1, self.commit_s + took
        self.commit_time.observe(took)

    def _settle(self) -> None:
        """Wait for the commit in flight.

        A commit that fails, or outlasts COMMIT_DEADLINE_S (streamgate/kafka/stuck.py), ends the
        process: retried in place after a broker restart, it stayed blocked for minutes with the
        transaction open, and every read_committed reader downstream waits behind an open transaction.
        The restarted worker's init_transactions aborts it at once, and the batch is decided again from
        the same claims."""
        if self.committing is None:
            return
        self.committing.join()
        self.committing = None
        if self.commit_error is not None:
            error = self.commit_error.args[0]
            log.error("request-path transaction failed (%s); exiting to resume from the last commit", error)
            # decisions in memory (claims, positions) are ahead of Kafka: a restart rebuilds them
            raise SystemExit(3) from self.commit_error
        self.committed.update((p, o) for p, o in self.in_commit.items() if p in self.owned)
        self.in_commit = {}
        self._publish_offsets()

    def _publish_offsets(self, force: bool = False) -> None:
        """Commit the group's offsets up to what the changelog holds, for lag monitoring (never ahead of
        the committed transactions; a failure here loses nothing, the changelog is the truth)."""
        if not self.committed or (not force and time.monotonic() - self.published_at < OFFSETS_EVERY_S):
            return
        offsets = [TopicPartition(self.source, p, o) for p, o in self.committed.items()]
        self.committed, self.published_at = {}, time.monotonic()
        with contextlib.suppress(KafkaException):
            if force:
                self.consumer.commit(offsets=offsets, asynchronous=False)
            else:
                self.consumer.commit(offsets=offsets, asynchronous=True)

    def _commit(self) -> None:
        """Everything decided so far, committed before returning (on revoke and at exit)."""
        self._settle()
        self._start_commit()
        self._settle()
        self._publish_offsets(force=True)

