"""Avro single-object encoding: exact framing, round trips, old versions, and named errors for bad bytes."""

from __future__ import annotations

import io

import pytest
from fastavro import schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from schemas import (
    EventEncodeError,
    MalformedEventError,
    SingleObjectCodec,
    UnknownSchemaError,
    WrongSchemaError,
    dead_letter_from_error,
    default_catalog,
)
from schemas.samples import sample_event

NAMES = default_catalog().names()


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_every_event_type(name: str) -> None:
    codec = SingleObjectCodec("t", name)
    records = [sample_event(name, seed) for seed in range(30)]
    encoded = codec.encode_many(records)
    assert codec.decode_many(encoded) == records


def test_header_is_the_spec_single_object_header() -> None:
    codec = SingleObjectCodec("t", "Request")
    data = codec.encode(sample_event("Request"))
    current = default_catalog().current("Request")
    expected_fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(current.parsed), "CRC-64-AVRO"))
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == expected_fp
    # the spec's own test vector: CRC-64-AVRO of "int" is 0x7275d51a3f395c8f, written little-endian
    assert fingerprint('"int"', "CRC-64-AVRO") == "8f5c393f1ad57572"


def test_old_version_bytes_decode_to_the_current_shape() -> None:
    v1 = default_catalog().versions("Request")[0]
    record = sample_event("Request", 3, version=1)
    buf = io.BytesIO()
    buf.write(b"\xc3\x01" + v1.fingerprint)
    schemaless_writer(buf, v1.parsed, record)
    decoded = SingleObjectCodec("requests", "Request").decode(buf.getvalue())
    assert decoded["session_id"] is None and decoded["metadata"] == {}
    assert decoded["request_id"] == record["request_id"]


@pytest.mark.parametrize(
    ("value", "error", "detail"),
    [
        (b"", MalformedEventError, "0 bytes"),
        (b"{\"json\": true}", MalformedEventError, "not an Avro single-object event"),
        (b"\xc3\x02" + b"\x00" * 20, MalformedEventError, "not an Avro single-object event"),
        (b"\xc3\x01" + b"\x01" * 8 + b"body", UnknownSchemaError, "0101010101010101"),
    ],
)
def test_bad_bytes_raise_typed_errors_naming_the_place(value: bytes, error: type, detail: str) -> None:
    codec = SingleObjectCodec("requests", "Request")
    with pytest.raises(error) as info:
        codec.decode(value, partition=4, offset=1234)
    assert "requests[4]@1234" in str(info.value)
    assert detail in str(info.value)
    assert (info.value.topic, info.value.partition, info.value.offset) == ("requests", 4, 1234)


def test_truncated_and_trailing_bytes_are_malformed() -> None:
    codec = SingleObjectCodec("requests", "Request")
    good = codec.encode(sample_event("Request"))
    with pytest.raises(MalformedEventError, match="does not decode"):
        codec.decode(good[: len(good) // 2])
    with pytest.raises(MalformedEventError, match="trailing bytes"):
        codec.decode(good + b"\x00\x01")


def test_event_of_another_type_is_wrong_schema() -> None:
    response_bytes = SingleObjectCodec("responses", "Response").encode(sample_event("Response"))
    with pytest.raises(WrongSchemaError, match="a Response event on a topic of Request"):
        SingleObjectCodec("requests", "Request").decode(response_bytes)


def test_decode_many_returns_errors_in_place_and_they_become_dead_letters() -> None:
    codec = SingleObjectCodec("requests", "Request")
    good = codec.encode(sample_event("Request"))
    out = codec.decode_many([good, b"junk", good])
    assert isinstance(out[0], dict) and isinstance(out[2], dict)
    assert isinstance(out[1], MalformedEventError)
    letter = dead_letter_from_error(out[1], raw_value=b"junk", raw_key=b"k", stage="validate", now_ms=5)
    assert letter["reason_code"] == "malformed" and letter["original_value"] == b"junk"
    encoded = SingleObjectCodec("deadletter", "DeadLetter").encode(letter)
    assert SingleObjectCodec("deadletter", "DeadLetter").decode(encoded) == letter


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda r: r.pop("team"), "team"),
        (lambda r: r.update(created_at="yesterday"), "created_at"),
        (lambda r: r.update(tags={"k": 1}), "tags"),
        (lambda r: r["messages"][0].update(content=None), "content"),
    ],
)
def test_invalid_records_name_the_field(mutate: object, needle: str) -> None:
    record = sample_event("Request")
    mutate(record)  # type: ignore[operator]
    with pytest.raises(EventEncodeError) as info:
        SingleObjectCodec("requests", "Request").encode(record)
    assert needle in str(info.value)
