"""The aggregator: telemetry in, usage aggregates out, both committed in one Kafka transaction.

Why not faust tables: faust's `exactly_once` is experimental (upstream #517, #323, #606), and its
at-least-once mode skipped a record in our own demo run (see streams/gaps.py). Here the state *is* the
output: every commit produces the changed aggregate rows (counters and the latency sketch) to the
compacted `usage.aggregates` topic together with the consumed offsets, in one transaction. A kill -9
aborts the open transaction, so rows and offsets roll back together; on assignment the state of a
partition is rebuilt from its committed rows, and consumption resumes at its committed offset. Every
telemetry event is therefore counted exactly once, without faust's transactions and without a
per-event dedup set — the Kafka Streams design, on librdkafka's transactions.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition

from aggregation.restore import read_rows
from aggregation.state import PartitionState
from schemas import make_codec
from schemas.deadletter import dead_letter_from_error
from schemas.errors import EventDecodeError
from schemas.topics import Topic, physical_name
from streamgate.config import Settings
from streamgate.gc_tuning import freeze_startup_heap
from streamgate.kafka.clients import consumer_config, transactional_config
from streamgate.kafka.stuck import committed_offsets_unknown, exit_if_stuck
from streamgate.observability import CountExport, Heartbeat, kafka_lag_stats, serve_metrics
from streamgate.observability.metrics import COMMITS, ERRORS, EVENTS_IN, EVENTS_OUT, LATENCY

log = logging.getLogger("streamgate.aggregation")
C = "aggregator"
#: Timeout of each transaction call; a commit blocked for longer than both ends the process.
TXN_CALL_S = 20.0


def _route(key: str) -> list[Any]:
    """`Aggregator.counts` keys -> metric children."""
    return {"events": [EVENTS_IN.labels(C, "aggregate")],
            "rows_written": [EVENTS_OUT.labels(C, "aggregate", "usage.aggregates")],
            "dead_lettered": [EVENTS_OUT.labels(C, "aggregate", "deadletter"),
                              ERRORS.labels(C, "aggregate", "undecodable")],
            "commits": [COMMITS.labels(C)]}.get(key, [])


class Aggregator:
    def __init__(self, settings: Settings, *, instance: str = "0",
                 heartbeat: Heartbeat | None = None) -> None:
        self.settings = settings
        prefix, registry = settings.kafka.topic_prefix, settings.schema_registry.url
        self.topics = {t: physical_name(t, prefix) for t in Topic}
        self.telemetry = make_codec(self.topics[Topic.TELEMETRY], "Telemetry", registry)
        self.rows = make_codec(self.topics[Topic.AGGREGATES], "UsageAggregate", registry)
        self.dead = make_codec(self.topics[Topic.DEADLETTER], "DeadLetter", registry)
        group = prefix + settings.aggregation.group_id
        # static membership: a restarted instance takes its partitions back at once instead of
        # waiting out the session timeout of the member it replaces
        self.consumer = Consumer(consumer_config(settings, group_id=group, role="aggregator") | {
            "partition.assignment.strategy": "cooperative-sticky",
            "group.instance.id": f"{group}-{instance}"} | kafka_lag_stats(C))
        self.producer = Producer(transactional_config(settings, transactional_id=f"{group}-{instance}",
                                                      client_id=f"{group}-{instance}", role="aggregator") | {
            "linger.ms": 5})
        self.grace_ms = int(settings.aggregation.grace_s * 1000)
        self.states: dict[int, PartitionState] = {}
        self.positions: dict[int, int] = {}  # partition -> next offset to consume (uncommitted)
        self.counts: Counter[str] = Counter()
        self.running = True
        self.heartbeat = heartbeat or Heartbeat(C, settings.metrics.stale_after_s)
        self.exported = CountExport(self.counts, _route)
        self.commit_time = LATENCY.labels(C, "commit")

    # -- assignment ---------------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        parts = {tp.partition for tp in partitions}
        states = {p: PartitionState(p, self.grace_ms) for p in parts}
        n = read_rows(self.settings, self.topics[Topic.AGGREGATES], self.rows, states)
        self.states.update(states)
        log.info("assigned telemetry partitions %s; %d aggregate rows restored", sorted(parts), n)
        consumer.incremental_assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._commit()  # what was counted so far lands with its offsets; the new owner resumes there
        for tp in partitions:
            self.states.pop(tp.partition, None)
            self.positions.pop(tp.partition, None)
        consumer.incremental_unassign(partitions)

    # -- the loop -----------------------------------------------------------------------------------
    def run(self, *, idle_exit_s: float | None = None) -> Counter[str]:
        """Consume until SIGTERM/SIGINT (or `idle_exit_s` without events, for benchmarks)."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self._halt())
        self.producer.init_transactions(30)
        self.producer.begin_transaction()
        self.consumer.subscribe([self.topics[Topic.TELEMETRY]], on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_revoke)
        interval = self.settings.aggregation.commit_interval_ms / 1000
        next_commit, last_event = time.monotonic() + interval, time.monotonic()
        while self.running:
            batch = self.consumer.consume(2000, timeout=0.05)
            self.heartbeat.beat()
            events: dict[int, list[dict[str, Any]]] = {}
            for msg in batch:
                self._decode(msg, events)
            for partition, decoded in events.items():
                self.states[partition].apply_batch(decoded)
                self.counts["events"] += len(decoded)
            if batch:
                last_event = time.monotonic()
            if time.monotonic() >= next_commit:
                self._commit()
                next_commit = time.monotonic() + interval
            if idle_exit_s is not None and time.monotonic() - last_event > idle_exit_s:
                break
        self._commit()
        self.consumer.close()
        return self.counts

    def _halt(self) -> None:
        self.running = False

    def _decode(self, msg: Message, events: dict[int, list[dict[str, Any]]]) -> None:
        if (error := msg.error()) is not None:
            if committed_offsets_unknown(error):
                log.error("%s; exiting for a restart", error.str())
                raise SystemExit(3)
            log.warning("consume error: %s", error)
            return
        partition, offset = msg.partition(), msg.offset()
        assert partition is not None and offset is not None
        state = self.states.get(partition)
        if state is None:  # revoked while the batch was in hand: its new owner counts it
            return
        raw = msg.value() or b""
        try:
            event = self.telemetry.decode(raw, partition=partition, offset=offset)
        except EventDecodeError as err:
            letter = dead_letter_from_error(err, raw_value=raw, raw_key=msg.key(), stage="aggregate-decode")
            self._produce(self.topics[Topic.DEADLETTER], msg.key() or b"", self.dead.encode(letter))
            self.counts["dead_lettered"] += 1
        else:
            events.setdefault(partition, []).append(event)
        self.positions[partition] = offset + 1

    def _produce(self, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key)
                return
            except BufferError:
                self.producer.poll(0.05)

    def _commit(self) -> None:
        """Changed rows and the offsets that produced them, in one transaction."""
        if not self.positions:
            return
        began = time.perf_counter()
        now = int(time.time() * 1000)
        topic = self.topics[Topic.AGGREGATES]
        for state in self.states.values():
            for key, cell in state.take_dirty():
                row = cell.to_row(key, state.watermark_ms, now)
                self._produce(topic, key.encoded().encode(), self.rows.encode(row))
                self.counts["rows_written"] += 1
            self.counts["evicted"] += state.evict_closed()
        offsets = [TopicPartition(self.topics[Topic.TELEMETRY], p, o) for p, o in self.positions.items()]
        try:
            with exit_if_stuck(TXN_CALL_S * 2 + 5, "aggregator transaction commit"):
                self.producer.send_offsets_to_transaction(offsets, self.consumer.consumer_group_metadata(),
                                                          TXN_CALL_S)
                self.producer.commit_transaction(TXN_CALL_S)
        except KafkaException as exc:
            log.error("aggregate transaction failed (%s); restarting from the last commit", exc.args[0])
            if not exc.args[0].fatal():
                self.producer.abort_transaction(30)
            raise SystemExit(3) from exc  # state in memory is ahead of Kafka: rebuild it on restart
        self.positions.clear()
        self.counts["commits"] += 1
        self.producer.begin_transaction()
        self.commit_time.observe(time.perf_counter() - began)
        self.exported.publish()


def run_aggregator(settings: Settings, *, instance: str = "0",
                   metrics_port: int | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    heartbeat = serve_metrics(settings, C, metrics_port)
    aggregator = Aggregator(settings, instance=instance, heartbeat=heartbeat)
    freeze_startup_heap()
    counts = aggregator.run()
    heartbeat.stop()
    log.info("stopped: %s", dict(counts))
    return dict(counts)
