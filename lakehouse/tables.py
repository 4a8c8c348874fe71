"""Which topic lands in which bronze table, and what each row carries besides the event."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from lakehouse.arrow_schema import event_schema
from schemas.topics import Topic

Transform = Callable[[dict[str, Any]], dict[str, Any]]

#: Kafka coordinates of every row: with them a row is traced to its record, and duplicates are visible.
META = [pa.field("_partition", pa.int32(), False), pa.field("_offset", pa.int64(), False),
        pa.field("_kafka_ts", pa.timestamp("ms", tz="UTC"), False), pa.field("date", pa.string(), False)]


def _no_original_bytes(record: dict[str, Any]) -> dict[str, Any]:
    """Dead letters carry the rejected bytes, which may hold unredacted PII: keep a hash and a size."""
    original = record.pop("original_value", None) or b""
    record["original_sha256"] = hashlib.sha256(original).hexdigest()
    record["original_size"] = len(original)
    return record


@dataclass(frozen=True)
class BronzeTable:
    name: str
    topic: Topic
    event_type: str
    transform: Transform | None = None
    drop: tuple[str, ...] = ()
    add: tuple[pa.Field, ...] = field(default_factory=tuple)
    #: Z-order columns for `streamgate lakehouse maintain` (the filters analysts use most).
    cluster_by: tuple[str, ...] = ()

    def event_schema(self) -> pa.Schema:
        """The columns the event itself fills (after `drop` and `add`)."""
        base = [f for f in event_schema(self.event_type) if f.name not in self.drop]
        return pa.schema([*base, *self.add])

    def schema(self) -> pa.Schema:
        return pa.schema([*self.event_schema(), *META])


BRONZE: tuple[BronzeTable, ...] = (
    # requests land after input guardrails, so only redacted content is ever persisted
    BronzeTable("requests", Topic.GUARDED, "Request", cluster_by=("team", "model")),
    BronzeTable("routed", Topic.ROUTED, "RoutedRequest", cluster_by=("team",)),
    BronzeTable("responses", Topic.RESPONSES, "Response", cluster_by=("team", "status")),
    BronzeTable("telemetry", Topic.TELEMETRY, "Telemetry", cluster_by=("team", "provider", "model")),
    BronzeTable("verdicts", Topic.VERDICTS, "GuardrailVerdict"),
    BronzeTable("audit", Topic.AUDIT, "AuditEvent"),
    BronzeTable("deadletter", Topic.DEADLETTER, "DeadLetter", _no_original_bytes, drop=("original_value",),
                add=(pa.field("original_sha256", pa.string(), False),
                     pa.field("original_size", pa.int64(), False))),
)
