"""Sending a batch's outputs, and waiting until Kafka has them all, before faust may commit its offsets.

Two ways, one interface:
- :class:`LibrdkafkaDelivery` (at-least-once, the default): confluent-kafka's producer. Its produce call
  runs in C; through faust's aiokafka producer each record cost Python-level futures, metadata lookups
  and batch building, a quarter of the worker's time in a profile. Records keep Java's key partitioner
  (murmur2), as aiokafka would have chosen.
- :class:`FaustDelivery` (exactly-once): faust's transaction manager, so the sends join the transaction
  that commits the offsets. Kafka transactions need faust's own producer.

Either way a batch's events are acked only after every record of the batch was delivered: a failed
delivery raises, the agent crashes and the batch is consumed again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

import faust
from confluent_kafka import KafkaError, Producer

from streamgate.config import Settings
from streamgate.kafka.clients import producer_config
from streams.io import Output

_UNASSIGNED = -1  # librdkafka: let the partitioner choose


class Delivery(Protocol):
    async def send(self, outputs: Sequence[Output]) -> None: ...


class DeliveryError(RuntimeError):
    """Kafka did not take every record of a batch."""


class FaustDelivery:
    def __init__(self, app: faust.App) -> None:
        self.app = app

    async def send(self, outputs: Sequence[Output]) -> None:
        # faust flushes before it commits but never looks at a failed send: delivery is awaited here
        producer = await self.app.maybe_start_producer()
        pending = [await producer.send(o.topic, o.key, o.value, o.partition, None, o.headers)
                   for o in outputs]
        await asyncio.gather(*pending)


class LibrdkafkaDelivery:
    def __init__(self, settings: Settings, client_id: str) -> None:
        config = producer_config(settings, client_id=client_id, role="streams")
        config["partitioner"] = "murmur2_random"
        self.producer = Producer(config)

    async def send(self, outputs: Sequence[Output]) -> None:
        failed: list[KafkaError] = []

        def delivered(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                failed.append(err)

        produce = self.producer.produce
        for o in outputs:
            partition = _UNASSIGNED if o.partition is None else o.partition
            while True:
                try:
                    produce(o.topic, o.value, o.key, partition=partition, on_delivery=delivered,
                            headers=o.headers)
                    break
                except BufferError:  # the local queue is full: let it drain
                    await asyncio.to_thread(self.producer.poll, 0.05)
        left = await asyncio.to_thread(self.producer.flush, 60)
        if left or failed:
            raise DeliveryError(f"{left} record(s) undelivered after 60 s, {len(failed)} failed: "
                                f"{failed[0] if failed else ''}")
