"""The generated Avro writers write what fastavro writes, byte for byte, and the generated readers read
what fastavro reads; both leave to fastavro what they cannot handle (the codec then raises fastavro's
precise error)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from schemas import make_codec
from schemas.avro_reader import compile_reader
from schemas.avro_writer import compile_writer
from schemas.catalog import default_catalog
from schemas.errors import EventEncodeError, MalformedEventError
from schemas.samples import sample_event


def _fastavro(schema: Any, record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, schema, record)
    return out.getvalue()


def _fastavro_read(schema: Any, body: bytes) -> Any:
    return schemaless_reader(io.BytesIO(body), schema, None)


@pytest.mark.parametrize("name", default_catalog().names())
def test_every_event_type_is_compiled_and_writes_and_reads_as_fastavro_does(name: str) -> None:
    schema = default_catalog().current(name).parsed
    write, read = compile_writer(schema), compile_reader(schema)
    assert write is not None and read is not None, f"{name} falls back to fastavro"
    for seed in range(200):
        record = sample_event(name, seed=seed)
        body = write(record)
        assert body == _fastavro(schema, record), (name, seed)
        assert read(b"hdr" + body, 3) == (_fastavro_read(schema, body), len(body) + 3), (name, seed)


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
    {"n": 1.0}, {"n": 2.7}, {"n": -2.7}, {"n": True}, {"i": 3.9}, {"tags": {"a": 1.5}},
    {"b": False}, {"opt": None}, {"later": "y"}, {"tags": {}}, {"items": []},
    {"more": [{"k": "A", "v": 1.0}]},
])
def test_edge_values_write_fastavros_bytes_and_read_back(changes: dict[str, Any]) -> None:
    write, read = compile_writer(SCHEMA), compile_reader(SCHEMA)
    assert write is not None and read is not None
    record = _record(**changes)
    body = write(record)
    assert body == _fastavro(SCHEMA, record)
    assert read(body, 0) == (_fastavro_read(SCHEMA, body), len(body))


def test_blocks_that_say_their_size_are_read_as_fastavro_reads_them() -> None:
    schema = parse_schema({"type": "record", "name": "B", "fields": [
        {"name": "xs", "type": {"type": "array", "items": "long"}},
        {"name": "m", "type": {"type": "map", "values": "string"}}]})
    read = compile_reader(schema)
    assert read is not None
    # xs: a block of -2 items (2, then its size in bytes: 2) holding 1 and -2, then the end; m: {"k": "v"}
    body = bytes([3, 4, 2, 3, 0, 2, 2]) + b"k" + bytes([2]) + b"v" + bytes([0])
    assert read(body, 0) == (_fastavro_read(schema, body), len(body)) == ({"xs": [1, -2], "m": {"k": "v"}},
                                                                         len(body))


def _damaged(body: bytes, damage: str) -> bytes:
    """`body` (SCHEMA's _record(s="ab", b=True)) with one thing broken."""
    s_at = body.index(b"\x04ab")  # the string "ab": its length 2 (zigzag 4), then its bytes
    if damage == "truncated":
        return body[:-3]
    if damage == "trailing":
        return body + b"\x00"
    if damage == "utf8":
        return body[:s_at + 1] + b"\xff\xfe" + body[s_at + 3:]
    if damage == "branch":  # `opt` is "o": its branch byte 2 becomes 6, a branch that is not there
        at = body.index(b"\x02\x02o")
        return body[:at] + b"\x06" + body[at + 1:]
    if damage == "enum":  # `kind` is B (index 1, zigzag 2) before the fixed "abcd": index 32
        return body.replace(b"\x02abcd", b"\x40abcd")
    at = s_at + 3 + 8 + 4  # boolean: after s come d (8 bytes) and f (4 bytes), then b
    assert body[at] == 1
    return body[:at] + b"\x05" + body[at + 1:]


@pytest.mark.parametrize("damage", ["truncated", "trailing", "utf8", "branch", "enum", "boolean"])
def test_damaged_bytes_are_refused_by_the_reader(damage: str) -> None:
    read = compile_reader(SCHEMA)
    assert read is not None
    body = _fastavro(SCHEMA, _record(s="ab", b=True))
    damaged = _damaged(body, damage)
    assert damaged != body
    try:
        record, end = read(damaged, 0)
    except Exception:  # refused: the codec asks fastavro, which says what is wrong
        return
    assert end != len(damaged), f"{damage}: read as {record}"


def test_the_codec_raises_fastavros_errors_for_damaged_values() -> None:
    codec = make_codec("t", "Telemetry")
    value = codec.encode(sample_event("Telemetry", seed=2))
    assert codec.decode(value) == codec.decode(bytes(value))
    with pytest.raises(MalformedEventError, match="does not decode"):
        codec.decode(value[:-4])
    with pytest.raises(MalformedEventError, match="trailing"):
        codec.decode(value + b"\x00")


def test_missing_fields_take_their_defaults_as_fastavro_does() -> None:
    write = compile_writer(SCHEMA)
    assert write is not None
    record = {k: v for k, v in _record().items() if k not in ("opt", "later", "tags", "more")}
    assert write(record) == _fastavro(SCHEMA, record)


@pytest.mark.parametrize("changes", [{"n": 2 ** 63}, {"i": 2 ** 31}, {"n": "1"}, {"n": None}, {"s": None},
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
    # a bool where an int is expected: written as fastavro writes it, as 1
    int_field = next(f["name"] for f in default_catalog().current("Telemetry").parsed["fields"]
                     if f["type"] in ("int", "long"))
    assert codec.decode(codec.encode(record | {int_field: True}))[int_field] == 1


def test_unions_of_two_types_are_left_to_fastavro() -> None:
    schema = parse_schema({"type": "record", "name": "U",
                           "fields": [{"name": "x", "type": ["int", "string"]}]})
    assert compile_writer(schema) is None
