"""One request record through the whole request path: decode once, validate, claim, guard, route.

The stages stay separate modules with plain functions (validate/, guardrails/, route/); this module only
chains them. Chaining them in one pass, rather than one faust agent per stage with a topic between each,
costs one Avro decode and one encode per request instead of three of each, one dedup claim instead of
three, and one consume instead of three (measured in docs/benchmarks.md). The transactions engine
(streams/loop.py), the optional faust agent (streams/app.py) and `bench/request_path.py` all call the same
:meth:`RequestPath.process`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from schemas import EventDecodeError, dead_letter_from_error
from schemas.topics import Topic
from shared.deadline import DEADLINE_EXCEEDED
from shared.guardrails.outcome import Rejection
from shared.guardrails.pii import scan_pii
from shared.guardrails.verdicts import PiiScanner
from shared.identity import KeyRing
from shared.policy.holder import PolicyHolder
from shared.retrieval import ContextRetriever
from streamgate.catalog import ModelCatalog, default_catalog
from streamgate.observability.metrics import ERRORS
from streams.guardrails.budgets import NoUsage, UsageReader
from streams.guardrails.stage import guard_request
from streams.identity.stage import authenticate
from streams.io import Output, StageIO, redaction_audit
from streams.route.context import with_context
from streams.route.health import ProviderHealth, StaticHealth
from streams.route.stage import route_stage
from streams.validate.rules import check_deadline, validate_request

log = logging.getLogger(__name__)

#: requests whose caller had stopped waiting before the request path got to them (the dispatcher counts
#: the ones that expire later under component="dispatcher")
_EXPIRED = ERRORS.labels("streams_worker", "request_path", DEADLINE_EXCEEDED)

#: (request id, partition, offset, now ms) -> True when another record claimed the id within the window.
Duplicate = Callable[[bytes, int, int, int], bool]


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
    #: API keys (streams/identity/): every request is authenticated against this ring and named by its
    #: key's public id downstream. None: authentication is off (`identity.enforce: false`).
    keys: KeyRing | None = None


def check_claim(held: list[int] | None, offset: int, now_ms: int,
                window_ms: int) -> tuple[bool, list[int] | None]:
    """(is a duplicate to drop, the claim to store or None) for a request id held by `held`.

    A record seen twice under another offset (a producer retry, a resend, a gap re-enqueue) must not be
    decided twice: a second decision can differ (budgets move) and would give the caller a second answer.
    A claim is [first seen ms, offset of the claiming record]; the offset tells a replay of the same record
    after a crash (decide it again) from a second record with the same id (drop it). Claims are kept per
    partition in memory and written to a compacted changelog in the same Kafka transaction as the batch's
    outputs (streams/claims.py, read back on assignment); on the faust engine they are a faust table; in
    unit tests and the benchmark, a dict.
    """
    if held and now_ms - held[0] < window_ms and held[1] != offset:
        return True, None
    if not held or held[1] != offset:
        return False, [now_ms, offset]
    return False, None



class RequestPath:
    """The request path's decisions for one deployment (topic names, codecs) and its dependencies."""

    def __init__(self, io: StageIO, deps: RequestPathDeps) -> None:
        self.io, self.deps = io, deps
        self.codec = io.codecs[Topic.REQUESTS]
        self.source = io.names[Topic.REQUESTS]
        self._stage = "validate"  # the stage being run, named in an internal_error dead letter
        self._caller: dict[str, Any] = {}
        #: the routed event of the last `process` call (None: not routed), for a caller that dispatches
        #: it in-process (the fused worker, apps/gateway/) instead of decoding its routed record again
        self.routed: dict[str, Any] | None = None

    def process(self, raw: bytes, key: bytes | None, partition: int, offset: int, duplicate: Duplicate,
                now_ms: int) -> list[Output]:
        """Every record this request produces: routed, or rejected with its dead letter and response;
        plus the guarded (redacted) request, verdicts and audit events along the way."""
        self.routed = None
        try:
            event = self.codec.decode(raw, partition=partition, offset=offset)
        except EventDecodeError as err:
            letter = dead_letter_from_error(err, raw_value=raw, raw_key=key, stage="requests-decode")
            return [self.io.out(Topic.DEADLETTER, key or b"", letter)]
        outputs: list[Output] = []
        self._stage = "validate"
        self._caller = event  # the event as authentication left it (naming the caller by key id)
        try:
            rejection = self._decide(event, raw, key, partition, offset, duplicate, now_ms, outputs)
        except Exception as exc:  # one bad event must not stop the stream: it is dead-lettered with the cause
            log.exception("%s stage failed on %s[%s]@%s", self._stage, self.source, partition, offset)
            rejection = Rejection(self._stage, "internal_error", f"{type(exc).__name__}: {exc}")
        if rejection is None:
            return outputs
        return outputs + self.io.rejection_outputs(
            rejection, source=Topic.REQUESTS, partition=partition, offset=offset, raw_key=key, raw_value=raw,
            event=self._caller, policy_version=self.deps.policy.policy.version)

    def _decide(self, received: dict[str, Any], raw: bytes, key: bytes | None, partition: int, offset: int,
                duplicate: Duplicate, now_ms: int, outputs: list[Output]) -> Rejection | None:
        deps, io, policy = self.deps, self.io, self.deps.policy.policy
        event, identity = received, None
        if deps.keys is not None:
            self._stage = "authenticate"
            caller, event = authenticate(received, deps.keys, now_ms)
            self._caller = event
            if isinstance(caller, Rejection):
                return caller
            identity = caller
            self._stage = "validate"
        rejection = validate_request(event, policy, deps.catalog) or check_deadline(event, now_ms)
        if rejection:
            if rejection.reason_code == DEADLINE_EXCEEDED:
                _EXPIRED.inc()
            return rejection
        request_id = event["request_id"]
        if duplicate(request_id.encode(), partition, offset, now_ms):
            message = f"request {request_id} was already seen within the dedup window"
            return Rejection("validate", "duplicate", message, respond=False)
        key = key or request_id.encode()
        self._stage = "guard"
        guarded = guard_request(event, policy, deps.scan_pii, deps.usage, now_ms, identity)
        outputs += [io.out(Topic.VERDICTS, request_id, v) for v in guarded.verdicts]
        if guarded.rejection is not None or guarded.event is None:
            return guarded.rejection
        if guarded.event is received:  # untouched: forward the original bytes instead of encoding again
            guarded_out = Output(io.names[Topic.GUARDED], key, raw)
        elif guarded.event is event and identity is not None and io.key_splicer is not None and (
                named := io.key_splicer.replace(raw, identity.key_id)) is not None:
            guarded_out = Output(io.names[Topic.GUARDED], key, named)  # only the caller's name changed
        else:
            guarded_out = io.out(Topic.GUARDED, key, guarded.event)
        outputs.append(guarded_out)
        redacted = guarded.event is not event and (guarded.event.get("metadata") or {}).get("guard.pii")
        if redacted:
            audit = redaction_audit(event, redacted.removeprefix("redact:"), policy.version)
            outputs.append(io.out(Topic.AUDIT, key, audit))
        self._stage = "route"
        # context is added after the guardrails (they judged what the caller sent), its access checked and
        # its text PII-scanned, before routing (streams/route/context.py)
        context = with_context(guarded.event, deps.context, policy, deps.scan_pii)
        outputs += [io.out(Topic.VERDICTS, request_id, v) for v in context.verdicts]
        if context.event is None:
            return context.rejection
        contexted = context.event
        routed = route_stage(contexted, policy, deps.health, deps.rng)
        if isinstance(routed, Rejection):
            return routed
        spliced = (io.splicer.splice(guarded_out.value or b"", routed)
                   if io.splicer is not None and contexted is guarded.event else None)
        outputs.append(io.out(Topic.ROUTED, key, routed) if spliced is None
                       else Output(io.names[Topic.ROUTED], key, spliced))
        self.routed = routed
        return None
