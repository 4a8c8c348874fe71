"""The floor under `streamgate bench latency`: the least an exactly-once Python gateway does per request.

It consumes `requests`, decodes each, and answers it at once with a fixed `ok` Response: on the caller's
reply partition from an idempotent producer (as the defaults do, `client.answer_before_commit`), and on
`responses` in a Kafka transaction that commits the consumed offsets with it, every 20 ms (the gateway's
`txn_linger_ms`), on a thread, with two transactional producers taking turns (as the gateway does: a
commit on the loop's thread held every answer behind it, p99 133-296 ms at 500-2,000/s). No
guardrails, routing, provider call, telemetry, claims or metrics: measured with the
same client, observers, broker and machine in the same run, what the gateway worker costs above it is
its own work, and what this costs is the platform's (Python, librdkafka, the broker, the harness).

Run by `bench/latency.py` as a process of its own: `python -m bench.bare_relay --config PATH`.
"""

from __future__ import annotations

import argparse
import signal
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from apps.gateway.fused import TRANSACTIONAL_PREFIX
from schemas import make_codec
from schemas.topics import Topic, physical_name
from streamgate.config import Settings, load_settings
from streamgate.kafka.clients import consumer_config, producer_config, transactional_config

COMMIT_EVERY_S = 0.020
BATCH = 500


def answer_for(request: dict[str, Any]) -> dict[str, Any]:
    """A complete `ok` Response to `request`, without a provider."""
    now = int(time.time() * 1000)
    return {"request_id": request["request_id"], "trace_id": request["trace_id"], "team": request["team"],
            "project": request["project"], "api_key_id": request["api_key_id"], "status": "ok",
            "reason_code": None, "message": None, "content": "floor", "tool_calls_json": None,
            "finish_reason": "stop", "provider": "none", "model": request["model"], "target_index": 0,
            "cache_hit": False, "cache_kind": None,
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0, "reasoning_tokens": 0},
            "cost_nanousd": 0, "latency_ms": 0.0, "rag_chunks": None,
            "created_at": request["created_at"], "completed_at": now}


class BareRelay:
    """One consumer, one transactional producer, one reply producer; one thread."""

    def __init__(self, settings: Settings) -> None:
        prefix = settings.kafka.topic_prefix
        self.source = physical_name(Topic.REQUESTS, prefix)
        self.responses = physical_name(Topic.RESPONSES, prefix)
        self.replies = physical_name(Topic.REPLIES, prefix)
        self.request_codec = make_codec(self.source, "Request", None)
        self.response_codec = make_codec(self.responses, "Response", None)
        group = prefix + settings.streams.group_id
        self.consumer = Consumer(consumer_config(settings, group_id=group, role="gateway"))
        name = f"{prefix}{TRANSACTIONAL_PREFIX}-floor"
        self.producers = [Producer(transactional_config(settings, transactional_id=f"{name}-{turn}",
                                                        client_id=f"{name}-{turn}", role="gateway")
                                   | {"linger.ms": 20}) for turn in "ab"]
        self.producer = self.producers[0]
        self.committing: Future[None] | None = None
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="commit")
        replies = producer_config(settings, client_id=f"{name}-replies", role="dispatcher")
        self.reply_producer = Producer(replies | {"linger.ms": 0, "compression.type": "none"})
        self.offsets: dict[tuple[str, int], int] = {}
        self.running = True

    def run(self) -> None:
        for producer in self.producers:
            producer.init_transactions()
        self.producer.begin_transaction()
        self.consumer.subscribe([self.source])
        last_commit = time.monotonic()
        while self.running:
            # block for the first record only (consume() would wait to fill its batch), and no longer
            # than the open transaction may stay open
            wait = max(0.001, last_commit + COMMIT_EVERY_S - time.monotonic()) if self.offsets else 0.1
            if (first := self.consumer.poll(wait)) is not None:
                for msg in [first, *self.consumer.consume(BATCH - 1, timeout=0)]:
                    if msg.error() is None:
                        self._answer(msg)
            self.reply_producer.poll(0)
            committed = self.committing is None or self.committing.done()
            if self.offsets and committed and time.monotonic() - last_commit >= COMMIT_EVERY_S:
                self._commit()
                last_commit = time.monotonic()
        if self.offsets:
            self._commit()
        if self.committing is not None:
            self.committing.result(30)
        self.reply_producer.flush(10)
        self.consumer.close()

    def _answer(self, msg: Any) -> None:
        request = self.request_codec.decode(msg.value() or b"")
        value = self.response_codec.encode(answer_for(request))
        key, partition = msg.key(), msg.partition() or 0
        if (reply := request.get("reply_partition")) is not None:
            self.reply_producer.produce(self.replies, value, key, partition=reply)
        self.producer.produce(self.responses, value, key, partition=partition)
        self.offsets[(msg.topic() or "", partition)] = (msg.offset() or 0) + 1

    def _commit(self) -> None:
        """Hand the open transaction to the commit thread; the other producer's opens at once."""
        if self.committing is not None:
            self.committing.result()  # raises a failed commit: the run is void
        offsets = [TopicPartition(t, p, o) for (t, p), o in self.offsets.items()]
        closing, group = self.producer, self.consumer.consumer_group_metadata()
        self.producer = self.producers[1] if closing is self.producers[0] else self.producers[0]
        self.producer.begin_transaction()
        self.offsets = {}

        def commit() -> None:
            closing.send_offsets_to_transaction(offsets, group)
            closing.commit_transaction()

        self.committing = self.thread.submit(commit)

    def stop(self, *_: Any) -> None:
        self.running = False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    relay = BareRelay(load_settings(parser.parse_args().config))
    signal.signal(signal.SIGTERM, relay.stop)
    relay.run()


if __name__ == "__main__":
    main()
