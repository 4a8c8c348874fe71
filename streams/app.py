"""The request path as faust-streaming agents: requests -> validated -> guarded -> routed.

The agents only wire: decode a batch, call the stage's plain function per event, send what it returns.
Offsets are committed by faust after the producer is flushed (at-least-once); with
`processing_guarantee="exactly_once"` sends and offsets commit in one Kafka transaction.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.streams import _current_event

from schemas import EventDecodeError, dead_letter_from_error
from schemas.topics import Topic
from streamgate.catalog import ModelCatalog, default_catalog
from streamgate.config import Settings
from streams.gaps import GapRepair
from streams.guardrails.budgets import NoUsage, UsageReader
from streams.guardrails.pii_scan import scan_pii
from streams.guardrails.stage import PiiScanner, guard_request
from streams.io import Output, StageIO, redaction_audit
from streams.outcome import Rejection
from streams.policy.holder import PolicyHolder
from streams.route.context import ContextRetriever, with_context
from streams.route.health import ProviderHealth, StaticHealth
from streams.route.stage import route_stage
from streams.validate.rules import validate_request

BATCH, WITHIN_S = 500, 0.02
log = logging.getLogger(__name__)


@dataclass
class RequestPathDeps:
    """What the stages read besides the event: swappable for tests and for later issues' state."""

    policy: PolicyHolder
    catalog: ModelCatalog = field(default_factory=default_catalog)
    health: ProviderHealth = field(default_factory=StaticHealth)
    usage: UsageReader = field(default_factory=NoUsage)
    scan_pii: PiiScanner = scan_pii
    rng: random.Random = field(default_factory=random.Random)
    #: retrieved context for requests tagged `rag: <collection>` (None: the tag is ignored)
    context: ContextRetriever | None = None


@dataclass
class StageResult:
    """What one event produced: records to send and, when it stops here, why."""

    outputs: list[Output] = field(default_factory=list)
    rejection: Rejection | None = None


Handler = Callable[[dict[str, Any], faust.types.EventT[bytes]], StageResult]


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
        datadir=str(datadir),
    )
    topics = {t: app.topic(io.names[t], key_serializer="raw", value_serializer="raw") for t in io.names}
    duplicate = _Claims(app, deps.policy.policy.validation.dedup_window_s * 1000).duplicate

    def validate(event: dict[str, Any], fev: faust.types.EventT[bytes]) -> StageResult:
        rejection = validate_request(event, deps.policy.policy, deps.catalog)
        if rejection:
            return StageResult(rejection=rejection)
        if (dup := duplicate("validate", event, fev)) is not None:
            return dup
        rid = event["request_id"].encode()
        # validation changes nothing: forward the original bytes instead of encoding again
        return StageResult([Output(io.names[Topic.VALIDATED], fev.message.key or rid, _raw(fev))])

    def guard(event: dict[str, Any], fev: faust.types.EventT[bytes]) -> StageResult:
        if (dup := duplicate("guard", event, fev)) is not None:
            return dup
        result = guard_request(event, deps.policy.policy, deps.scan_pii, deps.usage, int(time.time() * 1000))
        outputs = [io.out(Topic.VERDICTS, event["request_id"], v) for v in result.verdicts]
        if result.rejection is None and result.event is event:  # untouched: forward the original bytes
            outputs.append(Output(io.names[Topic.GUARDED], fev.message.key or b"", _raw(fev)))
        elif result.rejection is None and result.event is not None:
            outputs.append(io.out(Topic.GUARDED, fev.message.key or b"", result.event))
            if redacted := (result.event.get("metadata") or {}).get("guard.pii"):
                audit = redaction_audit(event, redacted.removeprefix("redact:"), deps.policy.policy.version)
                outputs.append(io.out(Topic.AUDIT, fev.message.key or b"", audit))
        return StageResult(outputs, result.rejection)

    def route(event: dict[str, Any], fev: faust.types.EventT[bytes]) -> StageResult:
        if (dup := duplicate("route", event, fev)) is not None:
            return dup
        routed = route_stage(with_context(event, deps.context), deps.policy.policy, deps.health, deps.rng)
        if isinstance(routed, Rejection):
            return StageResult(rejection=routed)
        return StageResult([io.out(Topic.ROUTED, fev.message.key or b"", routed)])

    async def send(outputs: Sequence[Output]) -> None:
        # with exactly_once this is faust's transaction manager, so sends join the offsets' transaction.
        # Delivery is awaited: faust flushes before it commits but never looks at a failed send.
        producer = await app.maybe_start_producer()
        pending = [await producer.send(o.topic, o.key, o.value, None, None, None) for o in outputs]
        await asyncio.gather(*pending)

    gaps = GapRepair(settings, app.conf.id)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _forget(sender: Any, revoked: set[Any], **_: Any) -> None:
        gaps.forget((tp.topic, tp.partition) for tp in revoked)

    def stage_agent(source: Topic, name: str, handler: Handler) -> Callable[[Any], Awaitable[None]]:
        codec = io.codecs[source]

        async def agent(stream: Any) -> None:  # faust.Stream; take_events is untyped there
            async for events in stream.take_events(BATCH, within=WITHIN_S):
                outputs: list[Output] = []
                for fev in events:
                    m = fev.message
                    if not gaps.in_order(m.topic, m.partition, m.offset):
                        await gaps.repair(m.topic, m.partition, m.offset)
                    outputs += _handle(io, source, codec, handler, fev, deps)
                await send(outputs)

        agent.__name__ = name
        return agent

    app.agent(topics[Topic.REQUESTS], name=f"{app_id}.validate")(
        stage_agent(Topic.REQUESTS, "validate", validate))
    app.agent(topics[Topic.VALIDATED], name=f"{app_id}.guard")(stage_agent(Topic.VALIDATED, "guard", guard))
    app.agent(topics[Topic.GUARDED], name=f"{app_id}.route")(stage_agent(Topic.GUARDED, "route", route))
    return app


class _Claims:
    """Every stage claims request ids: the request path is at-least-once, and a record seen twice under
    another offset (a producer retry, a faust redelivery, a gap re-enqueue) must not be decided twice —
    a second decision can differ (budgets move) and would give the caller a second answer.

    request id -> [first seen ms, offset of the record that claimed it]; the offset tells a replay of
    the same record after a crash (process it again) from a second record with the same id (drop it).
    """

    def __init__(self, app: faust.App, window_ms: int) -> None:
        self.window_ms = window_ms
        self.tables = {stage: app.Table(name, default=list, partitions=6, key_type=bytes)
                       for stage, name in (("validate", "dedup"), ("guard", "dedup-guard"),
                                           ("route", "dedup-route"))}

    def duplicate(self, stage: str, event: dict[str, Any],
                  fev: faust.types.EventT[bytes]) -> StageResult | None:
        table, rid = self.tables[stage], event["request_id"].encode()
        now, offset = int(time.time() * 1000), fev.message.offset
        claim = table[rid]
        if claim and now - claim[0] < self.window_ms and claim[1] != offset:
            message = f"request {event['request_id']} was already seen by the {stage} stage"
            return StageResult(rejection=Rejection(stage, "duplicate", message, respond=False))
        if not claim or claim[1] != offset:
            table[rid] = [now, offset]
        return None


def _raw(fev: faust.types.EventT[bytes]) -> bytes:
    return fev.value if isinstance(fev.value, bytes) else bytes(fev.value or b"")


def _handle(io: StageIO, source: Topic, codec: Any, handler: Handler, fev: faust.types.EventT[bytes],
            deps: RequestPathDeps) -> list[Output]:
    msg = fev.message
    raw = _raw(fev)
    try:
        event = codec.decode(raw, partition=msg.partition, offset=msg.offset)
    except EventDecodeError as err:
        letter = dead_letter_from_error(err, raw_value=raw, raw_key=msg.key, stage=f"{source}-decode")
        return [io.out(Topic.DEADLETTER, msg.key or b"", letter)]
    # faust tables find their changelog partition through the "current event"; batches must set it.
    ctx = contextvars.copy_context()
    try:
        result = ctx.run(_run_with_event, handler, event, fev)
    except Exception as exc:  # one bad event must not stop the stream: it is dead-lettered with the cause
        log.exception("stage %s failed on %s[%s]@%s", source, msg.topic, msg.partition, msg.offset)
        failure = Rejection(str(source), "internal_error", f"{type(exc).__name__}: {exc}")
        result = StageResult(rejection=failure)
    if result.rejection is None:
        return result.outputs
    return result.outputs + io.rejection_outputs(
        result.rejection, source=source, partition=msg.partition, offset=msg.offset, raw_key=msg.key,
        raw_value=raw, event=event, policy_version=deps.policy.policy.version)


def _run_with_event(handler: Handler, event: dict[str, Any], fev: faust.types.EventT[bytes]) -> StageResult:
    _current_event.set(weakref.ref(fev))
    return handler(event, fev)
