"""Batch decode to Arrow (DataFusion's Avro reader) gives exactly what per-record decoding gives."""

from __future__ import annotations

import io

import pyarrow as pa
import pytest
from fastavro import schemaless_writer

from lakehouse.arrow_schema import event_schema
from schemas import MalformedEventError, SingleObjectCodec, UnknownSchemaError, default_catalog
from schemas.arrow_batch import ArrowBatchDecoder
from schemas.samples import sample_event

NAMES = default_catalog().names()


def _decoder(name: str) -> tuple[SingleObjectCodec, ArrowBatchDecoder, pa.Schema]:
    codec = SingleObjectCodec("t", name)
    schema = event_schema(name)
    return codec, ArrowBatchDecoder(codec, schema), schema


@pytest.mark.parametrize("name", NAMES)
def test_every_event_type_decodes_to_the_rows_per_record_decoding_gives(name: str) -> None:
    codec, decoder, schema = _decoder(name)
    records = [sample_event(name, seed) for seed in range(200)]
    batch = decoder.decode(codec.encode_many(records))
    assert batch.errors == [] and batch.index == list(range(200))
    assert batch.table.schema == schema
    assert batch.table.to_pylist() == pa.Table.from_pylist(records, schema=schema).to_pylist()


def test_bad_records_take_only_their_own_place() -> None:
    codec, decoder, _ = _decoder("Telemetry")
    good = codec.encode_many([sample_event("Telemetry", seed) for seed in range(10)])
    truncated = good[3][:-4]
    unknown = b"\xc3\x01" + b"\x01" * 8 + good[4][10:]
    values = [*good[:5], truncated, *good[5:], unknown, b"not avro"]
    batch = decoder.decode(values)
    assert sorted(batch.index) == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]
    assert {i: type(e) for i, e in batch.errors} == {5: MalformedEventError, 11: UnknownSchemaError,
                                                      12: MalformedEventError}
    by_position = dict(zip(batch.index, batch.table.column("event_id").to_pylist(), strict=True))
    assert by_position[6] == codec.decode(good[5])["event_id"]


def test_an_older_writer_schema_is_resolved_to_the_current_shape() -> None:
    codec, decoder, _ = _decoder("Request")
    v1 = default_catalog().versions("Request")[0]
    old = io.BytesIO()
    old.write(b"\xc3\x01" + v1.fingerprint)
    schemaless_writer(old, v1.parsed, sample_event("Request", 3, version=1))
    current = codec.encode(sample_event("Request", 4))
    batch = decoder.decode([current, old.getvalue()])
    assert batch.errors == [] and sorted(batch.index) == [0, 1]
    rows = dict(zip(batch.index, batch.table.to_pylist(), strict=True))
    assert rows[1]["session_id"] is None and rows[1]["metadata"] == []
    assert rows[0]["request_id"] == codec.decode(current)["request_id"]
