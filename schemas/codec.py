"""Wire formats for event values, bound to one topic and its event type.

Two formats, one interface:
- Avro **single-object encoding** (`C3 01` + 8-byte CRC-64-AVRO fingerprint + body), resolved against the
  schemas in this repository — no service to run, and old events still decode after a schema change.
- **Confluent Schema Registry framing** (`00` + 4-byte schema id + body) through confluent-kafka's own
  serializers, when a registry URL is configured.

Decoded timestamps are int milliseconds in both formats: the hot path never builds datetime objects.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

from fastavro import schemaless_reader, schemaless_writer
from fastavro.validation import validate

from schemas.avro_reader import compile_reader
from schemas.avro_writer import compile_writer
from schemas.catalog import SchemaCatalog, SchemaVersion, default_catalog
from schemas.errors import (
    EventDecodeError,
    EventEncodeError,
    MalformedEventError,
    Place,
    UnknownSchemaError,
    WrongSchemaError,
)

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
_HEADER = len(SINGLE_OBJECT_MAGIC) + 8


class TopicCodec(Protocol):
    """Encodes and decodes the values of one topic."""

    topic: str
    event_type: str

    def encode(self, record: Mapping[str, Any]) -> bytes: ...

    def decode(self, value: bytes, *, partition: int = -1, offset: int = -1) -> dict[str, Any]: ...

    def encode_many(self, records: Iterable[Mapping[str, Any]]) -> list[bytes]: ...

    def decode_many(self, values: Iterable[bytes]) -> list[dict[str, Any] | EventDecodeError]: ...


def _decode_each(decode: Callable[[bytes], dict[str, Any]],
                 values: Iterable[bytes]) -> list[dict[str, Any] | EventDecodeError]:
    """Batch decode that never raises for one bad record: the error takes that record's place."""
    out: list[dict[str, Any] | EventDecodeError] = []
    for v in values:
        try:
            out.append(decode(v))
        except EventDecodeError as err:
            out.append(err)
    return out


def _encode_error(event_type: str, schema: SchemaVersion, record: Mapping[str, Any],
                  exc: Exception) -> EventEncodeError:
    """Re-validate only on failure, to name the offending field without slowing down every encode."""
    try:
        validate(record, schema.parsed, raise_errors=True)
    except Exception as detailed:  # fastavro's ValidationError lists the field paths
        return EventEncodeError(event_type, str(detailed))
    return EventEncodeError(event_type, f"{type(exc).__name__}: {exc}")


class SingleObjectCodec:
    """Avro single-object encoding against the repository's schemas."""

    def __init__(self, topic: str, event_type: str, catalog: SchemaCatalog | None = None, *,
                 generated: bool = True) -> None:
        """`generated`: write and read the current schema's records with code generated for it
        (schemas/avro_writer.py, avro_reader.py); False: with fastavro only (the benchmark's baseline)."""
        self.topic = topic
        self.event_type = event_type
        self._catalog = catalog or default_catalog()
        self._current = self._catalog.current(event_type)
        self._header = SINGLE_OBJECT_MAGIC + self._current.fingerprint
        self._write = compile_writer(self._current.parsed) if generated else None
        self._read = compile_reader(self._current.parsed) if generated else None

    def encode(self, record: Mapping[str, Any]) -> bytes:
        if self._write is not None:
            try:
                return self._header + self._write(record)
            except Exception:  # fastavro writes it, or says precisely what is wrong
                pass
        out = io.BytesIO()
        out.write(self._header)
        try:
            schemaless_writer(out, self._current.parsed, record)
        except Exception as exc:
            raise _encode_error(self.event_type, self._current, record, exc) from exc
        return out.getvalue()

    def encode_many(self, records: Iterable[Mapping[str, Any]]) -> list[bytes]:
        return [self.encode(r) for r in records]

    def decode(self, value: bytes, *, partition: int = -1, offset: int = -1) -> dict[str, Any]:
        where: Place = {"topic": self.topic, "partition": partition, "offset": offset}
        if len(value) < _HEADER or value[:2] != SINGLE_OBJECT_MAGIC:
            raise MalformedEventError(
                f"not an Avro single-object event ({len(value)} bytes, starts {value[:4].hex() or 'empty'})",
                **where)
        fp = value[2:_HEADER]
        if fp == self._current.fingerprint:
            if self._read is not None:
                try:
                    decoded, end = self._read(value, _HEADER)
                    if end == len(value):
                        return decoded
                except Exception:  # fastavro reads it, or says precisely what is wrong
                    pass
            writer, reader = self._current, None
        else:
            found = self._catalog.by_fingerprint(fp)
            if found is None:
                raise UnknownSchemaError(f"no known schema has fingerprint {fp.hex()}", **where)
            if found.name != self.event_type:
                raise WrongSchemaError(f"a {found.name} event on a topic of {self.event_type}", **where)
            writer, reader = found, self._current
        body = io.BytesIO(value)
        body.seek(_HEADER)
        try:
            record = schemaless_reader(body, writer.parsed, reader.parsed if reader else None)
        except Exception as exc:
            raise MalformedEventError(f"body does not decode as {writer.name} v{writer.version}: "
                                      f"{type(exc).__name__}: {exc}", **where) from exc
        if body.tell() != len(value):
            raise MalformedEventError(f"{len(value) - body.tell()} trailing bytes after the record", **where)
        if not isinstance(record, dict):
            raise MalformedEventError("decoded value is not a record", **where)
        return record

    def decode_many(self, values: Iterable[bytes]) -> list[dict[str, Any] | EventDecodeError]:
        return _decode_each(self.decode, values)


def _millis(record: dict[str, Any]) -> dict[str, Any]:
    """Timestamps back to int millis, so both formats decode to the same dicts (all are top-level)."""
    for k, v in record.items():
        if isinstance(v, datetime):
            record[k] = int(v.timestamp() * 1000)
    return record


class ConfluentCodec:
    """Confluent Schema Registry framing through confluent-kafka's AvroSerializer/AvroDeserializer."""

    def __init__(self, topic: str, event_type: str, registry_url: str,
                 catalog: SchemaCatalog | None = None) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
        from confluent_kafka.serialization import MessageField, SerializationContext

        self.topic = topic
        self.event_type = event_type
        current = (catalog or default_catalog()).current(event_type)
        self._schema = current
        schema_str = json.dumps(current.source)
        client = SchemaRegistryClient({"url": registry_url})
        self._serializer = AvroSerializer(client, schema_str, conf={"auto.register.schemas": True})
        self._deserializer = AvroDeserializer(client, schema_str, from_dict=lambda d, _ctx: _millis(d))
        self._ctx = SerializationContext(topic, MessageField.VALUE)

    def encode(self, record: Mapping[str, Any]) -> bytes:
        try:
            data = self._serializer(dict(record), self._ctx)
        except Exception as exc:
            if "registry" in type(exc).__module__ or "Connection" in type(exc).__name__:
                raise
            raise _encode_error(self.event_type, self._schema, record, exc) from exc
        if data is None:
            raise EventEncodeError(self.event_type, "serializer returned nothing")
        return bytes(data)

    def encode_many(self, records: Iterable[Mapping[str, Any]]) -> list[bytes]:
        return [self.encode(r) for r in records]

    def decode(self, value: bytes, *, partition: int = -1, offset: int = -1) -> dict[str, Any]:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        where: Place = {"topic": self.topic, "partition": partition, "offset": offset}
        if len(value) < 5 or value[0] != 0:
            raise MalformedEventError(
                f"not Confluent-framed ({len(value)} bytes, starts {value[:4].hex() or 'empty'})", **where)
        try:
            record = self._deserializer(value, self._ctx)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                schema_id = int.from_bytes(value[1:5], "big")
                raise UnknownSchemaError(f"registry has no schema id {schema_id}", **where) from exc
            raise
        except Exception as exc:
            raise MalformedEventError(f"{type(exc).__name__}: {exc}", **where) from exc
        if not isinstance(record, dict):
            raise MalformedEventError("decoded value is not a record", **where)
        return record

    def decode_many(self, values: Iterable[bytes]) -> list[dict[str, Any] | EventDecodeError]:
        return _decode_each(self.decode, values)


def make_codec(topic: str, event_type: str, registry_url: str | None = None) -> TopicCodec:
    """Confluent framing when a registry is configured, single-object encoding otherwise."""
    if registry_url:
        return ConfluentCodec(topic, event_type, registry_url)
    return SingleObjectCodec(topic, event_type)
