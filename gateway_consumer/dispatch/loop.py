"""The dispatch loop: routed requests in, many in flight, outcomes and offsets committed in one transaction.

confluent-kafka (librdkafka) rather than faust: faust's aiokafka transport measured ~2.8k events/s
consume+send on this machine, below the dispatch target on its own (docs/benchmarks.md). One asyncio
loop owns every Kafka call (polls are non-blocking; only transaction commits go to a thread).

Two transactional producers take turns: while one commits (5-15 ms here, 100-300 ms for the first),
the other's transaction is already open, so a finished request is produced at once instead of waiting
for the commit; commits stay strictly sequential, so offsets never run ahead of a failed transaction.

Exactly once, per request: a transaction is always open; a finished request's response, telemetry and
verdicts are produced into it at once, and its caller's copy on `replies` with them; it commits every
`commit_interval_ms` (by default 250 ms while callers take answers before the commit, which leaves only
downstream readers waiting for it; as soon as the previous commit has ended when callers read committed,
so none is delayed). A crash aborts the open transaction, so its answers vanish and are
redone. What makes an answer happen once is the responses topic itself (`answered.py`): a request is only
answered once its responses partition is known back to the request's creation, so a request read again
(after a crash, a rebalance, or routed again by the request path) finds its earlier answer there.

The consumed offsets are therefore not part of the transaction: after a transaction commits, the
contiguous commit points it covered are committed to the group asynchronously. They only bound how much a
restarted instance reads again. Offsets in the transaction cost two more coordinator round trips and a
`__consumer_offsets` marker per commit (~4 ms of a one-record transaction here, and 4-5x its broker CPU:
`streamgate bench broker-cost`), on every answer's path.

Any Kafka error the loop cannot recover from in place ends `run` with an exception, at once: the worker
process exits and its supervisor starts a clean instance, whose `init_transactions` ends what this one
left open (a transaction left open would hold every read_committed consumer back until it times out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from gateway_consumer.answer import DispatchDeps, Outcome, answer
from gateway_consumer.cache import ExactCache
from gateway_consumer.cache.match import Matcher, default_scorer
from gateway_consumer.cache.semantic import BatchingEmbedder, SemanticCache
from gateway_consumer.dispatch import metrics
from gateway_consumer.dispatch.answered import AnswerIndex
from gateway_consumer.dispatch.offsets import OffsetTracker
from gateway_consumer.dispatch.replies import Replies
from gateway_consumer.providers import build_provider
from gateway_consumer.providers.http1 import ConnectionPool, ProviderHTTP
from gateway_consumer.reliability import Breakers
from schemas import make_codec
from schemas.deadletter import dead_letter_from_error
from schemas.errors import EventDecodeError
from schemas.topics import Topic, physical_name
from shared.embeddings.minilm import MiniLM, ModelMissingError
from shared.policy.config import GatewayPolicy
from streamgate.catalog import default_catalog
from streamgate.config import Settings
from streamgate.gc_tuning import freeze_startup_heap
from streamgate.kafka.clients import routed_consumer_config, transactional_config
from streamgate.kafka.stuck import committed_offsets_unknown, exit_if_stuck
from streamgate.observability import CountExport, Heartbeat, kafka_lag_stats
from streamgate.observability.metrics import COMMITS, set_breakers

log = logging.getLogger("streamgate.dispatch")

#: How long an idle dispatcher (nothing in flight, nothing to commit) blocks waiting for a record: bounds
#: how late it notices a stop or beats its heartbeat; a record arriving ends the wait at once.
IDLE_WAIT_S = 0.05
#: The most a transaction's commit (offsets + commit) may take before the dispatcher gives up and exits.
#: A healthy commit takes 5-300 ms here; a broker restart's few seconds fit, a hung call does not.
TXN_CALL_S = 20.0
#: How long the transactional producers wait to batch records while callers read their answers before
#: the commit (`client.answer_before_commit`): nothing else reads the transaction's records before it
#: commits, and the answers leave from the reply producer (dispatch/replies.py), so the wait delays no
#: one. Longer than the commit interval (250 ms by default), so a transaction's records leave in the
#: commit's flush, in a few full produce requests, instead of one produce request per request or two.
#: At 100 and 250 requests/s of the realistic workload (full pipeline, two interleaved pairs each) the
#: broker's produce requests fell from 456-830 to 290-556 a second and its CPU by 12-13% (37-39
#: against 44% of a core at 100/s, 51-52 against 58-59 at 250/s), the gateway's unchanged; 20 ms
#: (before) against 0.5 had already cut the broker's CPU per request from 1.06 to 0.73-0.90 ms at 500/s
#: (docs/benchmarks.md, latency and pipeline). When the answers are in the transaction (callers read
#: committed) the commit waits for the batches, so each producer keeps its own short linger there: 20
#: ms took the caller's p50 from 14 to 19 ms at 500/s.
TXN_LINGER_MS = 1000.0


def txn_linger_ms(settings: Settings, answers_in_transaction_ms: float) -> float:
    """`linger.ms` of a transactional producer that writes callers' answers when they read committed."""
    return TXN_LINGER_MS if settings.client.answer_before_commit else answers_in_transaction_ms


@dataclass
class LatencySample:
    """Per request: seconds from consumed to produced, and the part of it spent on providers."""

    total_s: float
    provider_s: float
    consumed_at: float  # perf_counter() when consumed


@dataclass
class DispatchStats:
    counts: Counter[str] = field(default_factory=Counter)
    samples: list[LatencySample] = field(default_factory=list)
    keep_samples: bool = False


class Dispatcher:
    def __init__(self, settings: Settings, policy: Callable[[], GatewayPolicy], *, instance: str = "0",
                 keep_samples: bool = False, freeze_heap: bool = False,
                 heartbeat: Heartbeat | None = None) -> None:
        """`freeze_heap`: a worker process takes its start-up heap out of garbage collection
        (`streamgate.gc_tuning`) once its dependencies are built; a test process does not."""
        self.settings, self.policy, self.freeze_heap = settings, policy, freeze_heap
        prefix = settings.kafka.topic_prefix
        self.topics = {t: physical_name(t, prefix) for t in Topic}
        registry = settings.schema_registry.url
        self.routed_codec = make_codec(self.topics[Topic.ROUTED], "RoutedRequest", registry)
        self.rejected_codec = make_codec(self.topics[Topic.REJECTED], "Response", registry)
        #: what it consumes; the first is what it answers (the second: rejections it forwards)
        self.sources: tuple[str, ...] = (self.topics[Topic.ROUTED], self.topics[Topic.REJECTED])
        self.codecs = {Topic.RESPONSES: make_codec(self.topics[Topic.RESPONSES], "Response", registry),
                       Topic.TELEMETRY: make_codec(self.topics[Topic.TELEMETRY], "Telemetry", registry),
                       Topic.VERDICTS: make_codec(self.topics[Topic.VERDICTS], "GuardrailVerdict", registry),
                       Topic.DEADLETTER: make_codec(self.topics[Topic.DEADLETTER], "DeadLetter", registry),
                       Topic.REPLIES: make_codec(self.topics[Topic.REPLIES], "Response", registry)}
        #: single-object encoding does not depend on the topic, so a reply is the response's bytes (a
        #: registry's framing names a schema id per subject, so it is encoded for its topic)
        self.replies_reuse_encoding = not registry
        group = prefix + settings.dispatch.group_id
        self.consumer, self.producers = self._clients(instance)
        self.producer = self.producers[0]  # the one whose transaction is open
        self.replies = Replies(settings, self.topics, f"{group}-{instance}-chunks")  # callers who wait
        self.tracker: OffsetTracker[tuple[str, int]] = OffsetTracker()  # per (topic, partition)
        self.committed: dict[tuple[str, int], int] = {}  # the commit point last handed to a commit
        self.answered = AnswerIndex(settings, self.topics[Topic.RESPONSES], self.codecs[Topic.RESPONSES])
        self.in_flight: dict[str, asyncio.Task[None]] = {}
        self.failed: BaseException | None = None  # a Kafka error in a task: ends the loop
        self.task_partition: dict[str, tuple[str, int]] = {}
        self.produced = 0  # records produced into the open transaction
        self.stats = DispatchStats(keep_samples=keep_samples)
        self.heartbeat = heartbeat or Heartbeat(metrics.C, settings.metrics.stale_after_s)
        self.exported = CountExport(self.stats.counts, metrics.route)
        self.stop = asyncio.Event()
        # transaction calls get their own thread: on the shared default executor they once queued
        # behind other blocking work until the broker timed the transaction out and fenced us
        self.txn_thread = ThreadPoolExecutor(max_workers=2, thread_name_prefix="txn")
        self.commit_future: Future[None] | None = None  # the last commit handed to txn_thread

    def _clients(self, instance: str) -> tuple[Consumer, list[Producer]]:
        """The consumer of what is dispatched, and the two transactional producers taking turns."""
        group = self.settings.kafka.topic_prefix + self.settings.dispatch.group_id
        # static membership: a restarted instance takes its partitions back at once, and a zombie with
        # the same --instance is fenced out of the group as its producers are out of transactions
        consumer = Consumer(routed_consumer_config(self.settings, group_id=group, role="dispatcher") | {
            "partition.assignment.strategy": "cooperative-sticky",
            "group.instance.id": f"{group}-{instance}"} | kafka_lag_stats(metrics.C))
        linger = {"linger.ms": txn_linger_ms(self.settings, 2)}
        producers = [Producer(transactional_config(
            self.settings, transactional_id=f"{group}-{instance}-{turn}",
            client_id=f"{group}-{instance}-{turn}", role="dispatcher") | linger) for turn in "ab"]
        return consumer, producers

    # -- Kafka callbacks (run inside consume(), on the loop thread) --------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Nothing that waits on the broker here: this runs inside consume(), on the loop, and the open
        transaction must keep committing (the answers known per partition are read by the requests that
        need them, `AnswerIndex.cover`)."""
        log.info("assigned %s", sorted((tp.topic.rsplit(".", 1)[-1], tp.partition) for tp in partitions))
        consumer.incremental_assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Answers already produced for these partitions must be in the log before the new owner reads
        how far its partitions are answered (it waits for their transaction to end, not for our queue)."""
        for producer in self.producers:
            if producer.flush(10):
                log.warning("answers still queued after 10 s while handing partitions over")
        self._on_lost(consumer, partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        for request_id, part in list(self.task_partition.items()):
            if part in gone:
                self.in_flight[request_id].cancel()  # the new owner redoes it: its offset is not committed
        for place in gone:
            self.tracker.forget(place)
            self.committed.pop(place, None)
            self.answered.forget(place[1])  # its answers from now on are the new owner's
        consumer.incremental_unassign(partitions)

    # -- the loop -----------------------------------------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not on the main thread
                loop.add_signal_handler(sig, self.stop.set)
        for producer in self.producers:
            await loop.run_in_executor(self.txn_thread, producer.init_transactions, 30)
        self.producer.begin_transaction()
        self.consumer.subscribe(list(self.sources), on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_lost)
        settings = self.settings
        pool = ConnectionPool()  # per-attempt timeouts are the targets' own
        try:
            deps = self.deps = self._deps(ProviderHTTP(pool))
            if self.freeze_heap:
                freeze_startup_heap()
            next_commit = time.monotonic()
            interval_s = settings.dispatch.commit_interval_s(settings.client.answer_before_commit)
            commit: asyncio.Task[None] | None = None
            while not self.stop.is_set():
                got = 0
                if len(self.in_flight) < settings.dispatch.max_in_flight:
                    room = min(500, settings.dispatch.max_in_flight - len(self.in_flight))
                    idle = not self.in_flight and not self.produced and (commit is None or commit.done())
                    batch = self._take(room, IDLE_WAIT_S if idle else 0.0)
                    got = len(batch)
                    if batch:
                        self._accept_batch(batch, deps)
                for producer in self.producers:
                    producer.poll(0)
                self.replies.poll()
                if self.failed is not None:
                    raise self.failed
                self.heartbeat.beat()
                if time.monotonic() >= next_commit and (commit is None or commit.done()):
                    if commit is not None:
                        commit.result()  # re-raise a failed commit
                    next_commit = time.monotonic() + interval_s
                    commit = asyncio.create_task(self._commit())  # consuming goes on meanwhile
                if not got:
                    await asyncio.sleep(0.002)
            if commit is not None:
                await commit
            await self._drain()
        finally:
            pool.close()
        self.consumer.close()
        self.answered.close()
        self.replies.close()

    def _take(self, room: int, wait_s: float) -> list[Message]:
        """Up to `room` records; with `wait_s`, block for the first one (nothing else is pending on the
        loop then). Blocking in librdkafka rather than a sleep-and-poll turn: an idle dispatcher spun
        ~500 loop turns a second (~0.1 core), and a record arriving waited for the end of the sleep."""
        if wait_s <= 0:
            return self.consumer.consume(room, timeout=0)
        first = self.consumer.poll(wait_s)
        if first is None:
            return []
        return [first, *self.consumer.consume(room - 1, timeout=0)] if room > 1 else [first]

    def _deps(self, http: ProviderHTTP) -> DispatchDeps:
        settings = self.settings
        cache = settings.dispatch.cache
        return DispatchDeps(
            providers={n: build_provider(p) for n, p in settings.providers.items()}, http=http,
            settings=settings.dispatch, catalog=default_catalog(), policy=self.policy,
            breakers=Breakers(settings.dispatch.breaker),
            cache=ExactCache(cache.ttl_s, cache.max_entries) if cache.enabled else None,
            limits={n: asyncio.Semaphore(p.max_concurrency) for n, p in settings.providers.items()},
            rng=random.Random(), **self._semantic())

    def _semantic(self) -> dict[str, Any]:
        cache = self.settings.dispatch.cache
        if not (cache.enabled and cache.semantic.enabled and cache.semantic.teams):
            return {}
        try:
            model = MiniLM(cache.semantic.model_dir, int8=cache.semantic.int8)
            scorer = default_scorer(cache.semantic.model_dir) if cache.semantic.cross_encoder else None
        except ModelMissingError as exc:  # a clear warning, and dispatch goes on without it
            log.warning("semantic cache off: %s", exc)
            return {}
        matcher = Matcher(cache.semantic.threshold, scorer, cache.semantic.min_probability)
        return {"semantic": SemanticCache(cache.semantic.threshold, cache.ttl_s,
                                          cache.semantic.max_entries_per_scope, matcher),
                "embedder": BatchingEmbedder.from_settings(model, cache.semantic)}

    def _accept_batch(self, batch: list[Message], deps: DispatchDeps) -> None:
        for msg in batch:
            self._accept(msg, deps)

    def _consumable(self, msg: Message) -> bool:
        """False for a consume error (logged; one the loop cannot go on after ends it)."""
        if (error := msg.error()) is None:
            return True
        if committed_offsets_unknown(error):
            self.failed = KafkaException(error)  # ends the loop: the restart fetches them again
        elif error.code() != KafkaError._PARTITION_EOF:
            log.warning("consume error: %s", error)
        return False

    def _accept(self, msg: Message, deps: DispatchDeps) -> None:
        if not self._consumable(msg):
            return
        topic, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
        value, place = msg.value() or b"", (topic, partition)
        self.tracker.add(place, offset)
        self.stats.counts["consumed"] += 1
        codec = self.routed_codec if topic == self.sources[0] else self.rejected_codec
        try:
            event = codec.decode(value, partition=partition, offset=offset)
        except EventDecodeError as err:
            record = dead_letter_from_error(err, raw_value=value, raw_key=msg.key(), stage="dispatch")
            self._produce(Topic.DEADLETTER, partition, msg.key(), record)
            self.tracker.done(place, offset)
            self.stats.counts["dead_lettered"] += 1
            return
        request_id = event["request_id"]
        routed = codec is self.routed_codec
        reply_to = self.replies.reply_to(event, None if routed else msg.headers(), routed=routed)
        if request_id in self.answered or request_id in self.in_flight:
            self.tracker.done(place, offset)  # answered (or being answered) already: never twice
            self.stats.counts["duplicates_skipped"] += 1
            return
        task = asyncio.create_task(self._answer(event, deps, place, offset, msg.key(), time.perf_counter(),
                                                reply_to))
        task.add_done_callback(self._failed)
        self.in_flight[request_id] = task
        self.task_partition[request_id] = place

    async def _answer(self, event: dict[str, Any], deps: DispatchDeps, place: tuple[str, int], offset: int,
                      key: bytes | None, consumed: float, reply_to: int | None = None,
                      with_answer: Callable[[], None] | None = None) -> None:
        """Answer a routed request, or forward the request path's rejection, unless an answer to it is
        in the responses topic already (found once its partition is known back to its creation).
        `reply_to`: the partition of `replies` where its caller waits (`replies.py`). `with_answer`
        produces what must commit in the same transaction as the answer, just before it (the fused
        worker's request-path records: apps/gateway/)."""
        request_id, partition = event["request_id"], place[1]
        outcome: Outcome | None = None  # None: a rejection, forwarded as it is
        try:
            await self.answered.cover(partition, int(event.get("created_at") or 0))
            if request_id in self.answered:  # answered before this process, or before a restart
                self.tracker.done(place, offset)
                self.stats.counts["duplicates_skipped"] += 1
                return
            if place[0] == self.sources[0]:
                try:
                    stream = self.replies.stream(event, reply_to, key)
                    outcome = await answer(event, deps, stream)
                    if stream is not None:
                        await stream.delivered()  # its pieces are in the log before its answer
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a bug must not lose the request: it gets a failure response
                    log.exception("answering %s failed", request_id)
                    outcome = Outcome({**_failure(event, f"internal error: {type(exc).__name__}")}, [])
        finally:
            self.in_flight.pop(request_id, None)
            self.task_partition.pop(request_id, None)
        self.answered.add(request_id)
        if with_answer is not None:
            with_answer()
        if outcome is None:  # into the open transaction, like an answer
            encoded = self._produce(Topic.RESPONSES, partition, key, event)
            self._reply(reply_to, key, event, encoded)
            self.tracker.done(place, offset)
            self.stats.counts["answered_rejected"] += 1
            return
        encoded = self._emit(partition, offset, key, outcome, consumed)
        self._reply(reply_to, key, outcome.response, encoded)

    def _failed(self, task: asyncio.Task[None]) -> None:
        """A task's Kafka error (fenced producer, answers that could not be read) ends the loop."""
        if not task.cancelled() and (exc := task.exception()) is not None and self.failed is None:
            log.error("dispatch task failed: %r", exc)
            self.failed = exc

    def _emit(self, partition: int, offset: int, key: bytes | None, outcome: Outcome,
              consumed: float) -> bytes:
        """Produce a finished request's outcome into the open transaction; its offset may now commit.
        Returns the response as encoded on `responses`."""
        encoded = self._produce(Topic.RESPONSES, partition, key, outcome.response)
        for event in outcome.telemetry:
            self._produce(Topic.TELEMETRY, partition, key, event)
        for event in outcome.verdicts:
            self._produce(Topic.VERDICTS, partition, key, event)
        self.tracker.done((self.sources[0], partition), offset)
        counts, response = self.stats.counts, outcome.response
        counts["answered_" + response["status"]] += 1
        counts["cache_hits"] += int(response["cache_hit"])
        counts["telemetry"] += len(outcome.telemetry)
        if self.deps.cache is not None:
            hit = f"hit_{response['cache_kind'] or 'exact'}" if response["cache_hit"] else "miss"
            counts["lookup_" + hit] += 1
        total_s = time.perf_counter() - consumed
        metrics.observe(outcome, total_s)
        if self.stats.keep_samples:
            self.stats.samples.append(LatencySample(total_s, outcome.provider_s, consumed))
        return encoded

    def _reply(self, reply_to: int | None, key: bytes | None, response: dict[str, Any],
               encoded: bytes | None = None) -> None:
        """The answer again for its waiting caller: at once when callers read before the commit, else in
        the same transaction as its `responses` record (`encoded`: its bytes there, reused when both
        topics encode alike: no registry, same schema)."""
        if reply_to is None:
            return
        if encoded is None or not self.replies_reuse_encoding:
            encoded = self.codecs[Topic.REPLIES].encode(response)
        if self.replies.immediate:
            self.replies.answer(encoded, key, reply_to)
        else:
            self._produce_raw(self.topics[Topic.REPLIES], encoded, key, reply_to)
        self.stats.counts["replied"] += 1

    def _produce(self, topic: Topic, partition: int, key: bytes | None, record: dict[str, Any]) -> bytes:
        # same partition as the request (topics are co-partitioned), so answers of a partition are
        # found again on its reassignment; deadletter has fewer partitions, so it is keyed instead
        part = partition if topic is not Topic.DEADLETTER else -1
        value = self.codecs[topic].encode(record)
        self._produce_raw(self.topics[topic], value, key, part)
        return value

    def _produce_raw(self, topic: str, value: bytes | None, key: bytes | None, partition: int = -1,
                     headers: list[tuple[str, str | bytes | None]] | None = None) -> None:
        """Into the open transaction (-1: the partitioner chooses by key)."""
        while True:
            try:
                self.producer.produce(topic, value, key, partition=partition, headers=headers)
                self.produced += 1
                return
            except BufferError:
                self.producer.poll(0.05)

    def _before_commit(self) -> None:
        """What must ride in the transaction about to commit, produced last (the fused worker's positions
        and dedup claims); nothing here."""

    async def _commit(self, final: bool = False) -> None:
        """Hand the open transaction over for commit and open the other producer's at once (`final`:
        the last one, whose offsets are committed before returning)."""
        # only offsets whose outcomes are already produced, and only those that moved since the last
        # commit: a commit point stays put while a partition is idle, and re-sending it made every
        # idle loop turn a transaction once commits no longer wait for an interval
        points = {place: offset for place, offset in self.tracker.commit_points().items()
                  if self.committed.get(place) != offset}
        self._before_commit()
        if not points and not self.produced:
            return
        self.committed.update(points)  # this commit succeeds, or the process exits
        # callers reading before the commit: their answers in the log first, or a kill after the commit
        # leaves them answered on `responses` and waiting forever on `replies`
        answers = self.replies.mark() if self.replies.immediate else {}
        closing = self.producer
        self.producer = self.producers[1] if closing is self.producers[0] else self.producers[0]
        self.producer.begin_transaction()
        self.produced = 0
        loop = asyncio.get_running_loop()
        began = time.monotonic()

        def commit() -> None:
            if answers and not self.replies.wait_delivered(answers, TXN_CALL_S):
                log.warning("answers for waiting callers unacknowledged after %.0f s; committing anyway",
                            TXN_CALL_S)
            with exit_if_stuck(TXN_CALL_S + 5, "dispatcher transaction commit"):
                closing.commit_transaction(TXN_CALL_S)

        self.commit_future = self.txn_thread.submit(commit)
        while answers and not self.replies.reported(answers) and not self.commit_future.done():
            self.replies.poll()  # the reports it waits for are served here (also when draining at stop)
            await asyncio.sleep(0.001)
        try:
            await asyncio.wrap_future(self.commit_future, loop=loop)
        except KafkaException as exc:
            # No abort_transaction here, and no retry: a commit in flight while the broker restarted
            # did not finish after it came back (chaos seed 7: the next commit never started, the other
            # producer's transaction stayed open 75 s until the broker timed it out, and every
            # read_committed consumer waited behind it; then 30 s + 60 s of timeouts here). Exiting
            # now lets the restarted instance's init_transactions end both transactions at once;
            # their answers and offsets are redone, exactly once.
            log.error("transaction commit failed after %.1f s, exiting for a clean restart: %s",
                      time.monotonic() - began, exc.args[0])
            self.stop.set()
            raise
        self._commit_offsets(points, wait=final)
        self.stats.counts["commits"] += 1
        COMMITS.labels(metrics.C).inc()
        self.exported.publish()
        set_breakers(self.deps.breakers.states())
        if (took := time.monotonic() - began) > 2:
            log.warning("slow transaction commit: %.1f s (given up after %.0f s)", took, TXN_CALL_S)

    def _commit_offsets(self, points: dict[tuple[str, int], int], wait: bool = False) -> None:
        """The group's offsets, after the transaction holding their answers committed. Only partitions
        still ours: a late commit for a partition handed over would move its new owner's offset back."""
        ours = self.tracker.partitions
        offsets = [TopicPartition(t, p, o) for (t, p), o in points.items() if (t, p) in ours]
        if not offsets:
            return
        try:
            if wait:
                self.consumer.commit(offsets=offsets, asynchronous=False)
            else:
                self.consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:  # nothing is lost: a restart reads a little more again
            log.warning("committing consumed offsets failed: %s", exc)

    async def _drain(self) -> None:
        """On stop: finish what is in flight (bounded), then commit it."""
        if self.in_flight:
            await asyncio.wait(list(self.in_flight.values()), timeout=30)
        await self._commit(final=True)


def _failure(routed: dict[str, Any], message: str) -> dict[str, Any]:
    now = int(time.time() * 1000)
    return {"request_id": routed["request_id"], "trace_id": routed["trace_id"], "team": routed["team"],
            "project": routed["project"], "api_key_id": routed["api_key_id"], "status": "failed",
            "reason_code": "internal_error", "message": message, "content": None, "finish_reason": None,
            "provider": None, "model": None, "target_index": None, "cache_hit": False, "cache_kind": None,
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0, "reasoning_tokens": 0},
            "cost_nanousd": 0, "latency_ms": None, "created_at": routed["created_at"], "completed_at": now}
