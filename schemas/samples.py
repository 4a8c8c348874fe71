"""Deterministic, schema-valid sample events of any type and version, for tests and benchmarks.

Built by walking the schema, so a new field or a new event type has samples without code changes.
"""

from __future__ import annotations

import random
from typing import Any

from schemas.catalog import default_catalog

_BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _value(schema: Any, field: str, rng: random.Random, named: dict[str, Any]) -> Any:
    if isinstance(schema, list):  # unions: exercise both null and the value
        non_null = [s for s in schema if s != "null"]
        return None if rng.random() < 0.3 or not non_null else _value(non_null[0], field, rng, named)
    if isinstance(schema, str):
        if schema in named:
            return _value(named[schema], field, rng, named)
        return _primitive(schema, field, rng)
    kind = schema["type"]
    if isinstance(kind, (dict, list)):
        return _value(kind, field, rng, named)
    if kind == "record":
        named[schema["name"]] = schema
        return {f["name"]: _value(f["type"], f["name"], rng, named) for f in schema["fields"]}
    if kind == "array":
        return [_value(schema["items"], field, rng, named) for _ in range(rng.randint(1, 3))]
    if kind == "map":
        return {f"k{i}": _value(schema["values"], field, rng, named) for i in range(rng.randint(0, 2))}
    if kind == "enum":
        return rng.choice(schema["symbols"])
    if schema.get("logicalType") == "timestamp-millis":
        return _BASE_MS + rng.randint(0, 86_400_000)
    return _primitive(kind, field, rng)


def _primitive(kind: str, field: str, rng: random.Random) -> Any:
    if kind == "string":
        return f"{field}-{rng.randint(0, 9999)}"
    if kind in ("int", "long"):
        return rng.randint(0, 1000)
    if kind in ("float", "double"):
        return round(rng.random() * 100, 3)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "bytes":
        return rng.randbytes(rng.randint(0, 16))
    if kind == "null":
        return None
    raise ValueError(f"no sample for Avro type {kind!r}")


def sample_event(name: str, seed: int = 0, version: int | None = None) -> dict[str, Any]:
    """A valid record of event type `name` (current version unless `version` is given)."""
    versions = default_catalog().versions(name)
    chosen = versions[-1] if version is None else next(v for v in versions if v.version == version)
    rng = random.Random(f"{name}:{seed}")
    record = _value(chosen.source, "", rng, {})
    assert isinstance(record, dict)
    return record
