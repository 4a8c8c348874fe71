"""The request path as one faust-streaming agent (`streams.engine: faust`): requests -> (validate, guard,
route) -> routed. The default engine is streams/loop.py; both call the same RequestPath.

The agent only wires: it takes a batch, hands each record to :class:`streams.pipeline.RequestPath` (which
chains the stages' plain functions), sends what it returns and waits until Kafka has all of it
(streams/delivery.py) before faust acks the batch and may commit its offsets (at-least-once); with
`processing_guarantee="exactly_once"` sends and offsets commit in one Kafka transaction.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from typing import Any

import faust

from schemas.topics import Topic
from streamgate.config import Settings
from streamgate.kafka.security import client_security
from streams.claims import BatchedClaims
from streams.delivery import Delivery, FaustDelivery, LibrdkafkaDelivery
from streams.gaps import GapRepair
from streams.io import Output, StageIO
from streams.metrics import StageMeter
from streams.pipeline import RequestPath, RequestPathDeps

BATCH, WITHIN_S = 500, 0.02
log = logging.getLogger(__name__)
__all__ = ["RequestPathDeps", "create_app"]


def faust_credentials(settings: Settings) -> faust.SASLCredentials | None:
    """The request path's principal for faust's aiokafka clients (the same credentials clients.py gives
    librdkafka): SCRAM, over TLS verified against the configured CA with SASL_SSL."""
    props = client_security(settings, "streams")
    if not props:
        return None
    context = (ssl.create_default_context(cafile=props["ssl.ca.location"])
               if props["security.protocol"] == "SASL_SSL" else None)
    return faust.SASLCredentials(username=props["sasl.username"], password=props["sasl.password"],
                                 ssl_context=context, mechanism=props["sasl.mechanism"])


def create_app(settings: Settings, deps: RequestPathDeps, *, app_id: str = "streamgate-request-path",
               exactly_once: bool = False, web_port: int | None = None) -> faust.App:
    io = StageIO(settings)
    prefix = settings.kafka.topic_prefix
    datadir = settings.state_dir / "faust"
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        f"{prefix}{app_id}", broker="kafka://" + settings.kafka.bootstrap().replace(",", ";"),
        # topics below are raw bytes; tables (dedup claims) use JSON, so their changelog round-trips
        store="memory://", key_serializer="raw", value_serializer="json",
        topic_partitions=6, topic_replication_factor=1,
        processing_guarantee="exactly_once" if exactly_once else "at_least_once",
        web_enabled=web_port is not None, web_port=web_port or 6066,
        consumer_auto_offset_reset="earliest", broker_commit_interval=1.0,
        stream_buffer_maxsize=4 * BATCH, producer_linger_ms=5,
        datadir=str(datadir), broker_credentials=faust_credentials(settings),
    )
    source = app.topic(io.names[Topic.REQUESTS], key_serializer="raw", value_serializer="raw")
    # dedup claims: one changelog record per batch and partition (streams/claims.py), restored by faust
    table = app.Table("dedup", default=dict, partitions=6, key_type=bytes)
    changelog = table.changelog_topic.get_topic_name()
    claims = BatchedClaims(table.data, deps.policy.policy.validation.dedup_window_s * 1000)
    path = RequestPath(io, deps)
    meter = StageMeter("request_path", io.names)
    gaps = GapRepair(settings, app.conf.id)

    delivery: Delivery = (FaustDelivery(app) if exactly_once
                          else LibrdkafkaDelivery(settings, client_id=f"{app.conf.id}-out"))

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _forget(sender: Any, revoked: set[Any], **_: Any) -> None:
        gaps.forget((tp.topic, tp.partition) for tp in revoked)

    async def deliver_then_ack(outputs: list[Output], events: list[Any]) -> None:
        await delivery.send(outputs)  # raises on a failed delivery: then these events are never acked
        for fev in events:
            fev.ack()

    @app.agent(source, name=f"{app_id}.request-path")
    async def request_path(stream: Any) -> None:  # faust.Stream; take_events is untyped there
        in_flight: asyncio.Task[None] | None = None
        async for events in stream.take_events(BATCH, within=WITHIN_S):
            began = time.perf_counter()
            outputs: list[Output] = []
            claims.window_ms = deps.policy.policy.validation.dedup_window_s * 1000  # may change live
            for fev in events:
                m = fev.message
                if not gaps.in_order(m.topic, m.partition, m.offset):
                    await gaps.repair(m.topic, m.partition, m.offset)
                raw = fev.value if isinstance(fev.value, bytes) else bytes(fev.value or b"")
                now_ms = int(time.time() * 1000)
                outputs += path.process(raw, m.key, m.partition, m.offset, claims.duplicate, now_ms)
            outputs += [Output(changelog, key, _json_or_tombstone(value), partition)
                        for partition, key, value in claims.flush(int(time.time() * 1000))]
            meter.batch(len(events), outputs, time.perf_counter() - began)
            if exactly_once:  # the sends must join the transaction that commits these offsets: no overlap
                await delivery.send(outputs)
                continue
            # at-least-once: the batch is delivered while the next one is processed. take_events acks
            # each event when this body returns; the extra reference keeps its offset uncommittable
            # until deliver_then_ack has seen every record of the batch delivered.
            for fev in events:
                fev.message.incref()
            if in_flight is not None:
                await in_flight  # one batch in flight: records stay in order, memory stays bounded
            in_flight = asyncio.ensure_future(deliver_then_ack(outputs, events))

    return app


def _json_or_tombstone(value: Any) -> bytes | None:
    return None if value is None else json.dumps(value).encode()
