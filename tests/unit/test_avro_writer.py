"""The generated Avro writers write what fastavro writes, byte for byte, and leave to fastavro what they
cannot write (the codec then raises fastavro's precise error)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer

from schemas import make_codec
from schemas.avro_writer import compile_writer
from schemas.catalog import default_catalog
from schemas.errors import EventEncodeError
from schemas.samples import sample_event


def _fastavro(schema: Any, record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, schema, record)
    return out.getvalue()


@pytest.mark.parametrize("name", default_catalog().names())
def test_every_event_type_is_compiled_and_writes_fastavros_bytes(name: str) -> None:
    schema = default_catalog().current(name).parsed
    write = compile_writer(schema)
    assert write is not None, f"{name} falls back to fastavro"
    for seed in range(200):
        record = sample_event(name, seed=seed)
        assert write(record) == _fastavro(schema, record), (name, seed)


SCHEMA = parse_schema({
    "type": "record", "name": "T", "namespace": "t",
    "fields": [
        {"name": "n", "type": "long"}, {"name": "i", "type": "int"}, {"name": "s", "type": "string"},
        {"name": "d", "type": "double"}, {"name": "f", "type": "float"}, {"name": "b", "type": "boolean"},
        {"name": "raw", "type": "bytes"}, {"name": "opt", "type": ["null", "string"], "default": None},
        {"name": "later", "type": ["string", "null"], "default": "x"},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
        {"name": "fx", "type": {"type": "fixed", "name": "Four", "size": 4}},
        {"name": "tags", "type": {"type": "map", "values": "long"}, "default": {}},
        {"name": "items", "type": {"type": "array", "items": {
            "type": "record", "name": "Item", "fields": [{"name": "k", "type": "t.Kind"},
                                                         {"name": "v", "type": ["null", "double"]}]}}},
        {"name": "more", "type": {"type": "array", "items": "t.Item"}, "default": []},
    ]})


def _record(**changes: Any) -> dict[str, Any]:
    return {"n": 0, "i": -1, "s": "héllo ✓", "d": 1.5, "f": 0.25, "b": True, "raw": b"\x00\xff",
            "opt": "o", "later": None, "kind": "B", "fx": b"abcd", "tags": {"a": 1, "b": -2 ** 63},
            "items": [{"k": "A", "v": None}, {"k": "B", "v": 2.0}], **changes}


@pytest.mark.parametrize("changes", [
    {}, {"n": 2 ** 63 - 1}, {"n": -2 ** 63}, {"n": 63}, {"n": 64}, {"n": 1023}, {"n": 1024}, {"n": -65},
    {"i": 2 ** 31 - 1}, {"i": -2 ** 31}, {"s": ""}, {"s": "x" * 5000}, {"d": 3}, {"f": float("inf")},
    {"b": False}, {"opt": None}, {"later": "y"}, {"tags": {}}, {"items": []},
    {"more": [{"k": "A", "v": 1.0}]},
])
def test_edge_values_write_fastavros_bytes(changes: dict[str, Any]) -> None:
    write = compile_writer(SCHEMA)
    assert write is not None
    record = _record(**changes)
    assert write(record) == _fastavro(SCHEMA, record)


def test_missing_fields_take_their_defaults_as_fastavro_does() -> None:
    write = compile_writer(SCHEMA)
    assert write is not None
    record = {k: v for k, v in _record().items() if k not in ("opt", "later", "tags", "more")}
    assert write(record) == _fastavro(SCHEMA, record)


@pytest.mark.parametrize("changes", [{"n": 2 ** 63}, {"i": 2 ** 31}, {"n": "1"}, {"n": True}, {"s": None},
                                     {"kind": "C"}, {"fx": b"abc"}, {"b": 1}])
def test_values_it_cannot_write_raise_so_the_codec_asks_fastavro(changes: dict[str, Any]) -> None:
    write = compile_writer(SCHEMA)
    assert write is not None
    with pytest.raises(Exception):  # noqa: B017 - any: the codec then writes with fastavro
        write(_record(**changes))


def test_the_codec_falls_back_to_fastavro_for_its_errors_and_its_coercions() -> None:
    codec = make_codec("t", "Telemetry")
    record = sample_event("Telemetry", seed=1)
    assert codec.encode(record) == codec.encode(dict(record))
    with pytest.raises(EventEncodeError, match="request_id"):
        codec.encode({k: v for k, v in record.items() if k != "request_id"})
    # a bool where an int is expected: the generated writer refuses it, fastavro writes it as 1
    int_field = next(f["name"] for f in default_catalog().current("Telemetry").parsed["fields"]
                     if f["type"] in ("int", "long"))
    assert codec.decode(codec.encode(record | {int_field: True}))[int_field] == 1


def test_unions_of_two_types_are_left_to_fastavro() -> None:
    schema = parse_schema({"type": "record", "name": "U",
                           "fields": [{"name": "x", "type": ["int", "string"]}]})
    assert compile_writer(schema) is None
