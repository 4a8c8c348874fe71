"""Arrow schemas derived from the Avro schemas: one mapping, so a table follows its event type.

Timestamps (`timestamp-millis`) become UTC millisecond timestamps, enums strings, maps string maps,
unions with null nullable columns. A field added to an Avro schema (always with a default, which the
compatibility check enforces) becomes a column added to the Delta table on the next write.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from schemas.catalog import default_catalog

_PRIMITIVES: dict[str, pa.DataType] = {
    "string": pa.string(), "bytes": pa.binary(), "int": pa.int32(), "long": pa.int64(),
    "float": pa.float32(), "double": pa.float64(), "boolean": pa.bool_(),
}


def arrow_type(avro: Any) -> tuple[pa.DataType, bool]:
    """(arrow type, nullable) of one Avro type."""
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        if len(branches) != 1:
            raise ValueError(f"unions of several non-null types are not mapped: {avro}")
        return arrow_type(branches[0])[0], True
    if isinstance(avro, str):
        if avro not in _PRIMITIVES:
            raise ValueError(f"unmapped Avro type {avro!r}")
        return _PRIMITIVES[avro], False
    kind = avro["type"]
    if avro.get("logicalType") == "timestamp-millis":
        return pa.timestamp("ms", tz="UTC"), False
    if kind == "record":
        return pa.struct([field_of(f) for f in avro["fields"]]), False
    if kind == "enum":
        return pa.string(), False
    if kind == "array":
        item, nullable = arrow_type(avro["items"])
        return pa.list_(pa.field("item", item, nullable)), False
    if kind == "map":
        value, nullable = arrow_type(avro["values"])
        return pa.map_(pa.string(), pa.field("value", value, nullable)), False
    return arrow_type(kind)


def field_of(avro_field: dict[str, Any]) -> pa.Field:
    dtype, nullable = arrow_type(avro_field["type"])
    return pa.field(avro_field["name"], dtype, nullable)


def event_schema(event_type: str) -> pa.Schema:
    """The Arrow schema of the current version of an event type."""
    source = default_catalog().current(event_type).source
    return pa.schema([field_of(f) for f in source["fields"]])
