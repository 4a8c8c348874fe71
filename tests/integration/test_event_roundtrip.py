"""Every event type through the real broker, in both wire formats; bad bytes come back as typed errors."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer

from schemas import EventDecodeError, MalformedEventError, UnknownSchemaError, default_catalog, make_codec
from schemas.samples import sample_event
from schemas.topics import load_topic_specs
from streamgate.config import Settings
from streamgate.kafka.clients import consumer_config, producer_config

pytestmark = pytest.mark.kafka
PER_TYPE = 20


def _produce(settings: Settings, topic: str, values: list[bytes]) -> None:
    producer = Producer(producer_config(settings, client_id="roundtrip", role="admin"))
    for v in values:
        producer.produce(topic, value=v, key=uuid.uuid4().bytes)
    assert producer.flush(30) == 0


def _consume(settings: Settings, topic: str, n: int) -> list[tuple[bytes, int, int]]:
    consumer = Consumer(consumer_config(settings, group_id=f"rt-{uuid.uuid4().hex[:6]}", role="admin"))
    consumer.subscribe([topic])
    out: list[tuple[bytes, int, int]] = []
    deadline = time.monotonic() + 30
    while len(out) < n and time.monotonic() < deadline:
        for m in consumer.consume(200, timeout=0.5):
            if m.error() is None:
                out.append((m.value() or b"", m.partition() or 0, m.offset() or 0))
    consumer.close()
    return out


def _round_trip(settings: Settings, topics: dict[str, str], registry_url: str | None) -> None:
    for spec in load_topic_specs():
        topic = topics[spec.name]
        codec = make_codec(topic, spec.value_schema, registry_url)
        records = [sample_event(spec.value_schema, seed) for seed in range(PER_TYPE)]
        _produce(settings, topic, codec.encode_many(records))
        got = _consume(settings, topic, PER_TYPE)
        decoded = [codec.decode(v, partition=p, offset=o) for v, p, o in got]
        key = next(iter(records[0]))
        assert sorted(map(repr, decoded)) == sorted(map(repr, records)), f"{spec.name} ({key})"


def test_single_object_round_trip_of_every_topic(settings: Settings, topics: dict[str, str]) -> None:
    _round_trip(settings, topics, None)


def test_confluent_round_trip_of_every_topic(settings: Settings, topics: dict[str, str],
                                             schema_registry) -> None:  # type: ignore[no-untyped-def]
    _round_trip(settings, topics, schema_registry.url)
    # the bytes really are Confluent-framed: magic 0 and a registry id
    value = _consume(settings, topics["requests"], 1)[0][0]
    assert value[0] == 0 and int.from_bytes(value[1:5], "big") >= 1


def test_confluent_codec_reads_old_schema_versions(settings: Settings, topics: dict[str, str],
                                                   schema_registry) -> None:  # type: ignore[no-untyped-def]
    import json

    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    topic = topics["requests"]
    v1 = default_catalog().versions("Request")[0]
    old_writer = AvroSerializer(SchemaRegistryClient({"url": schema_registry.url}), json.dumps(v1.source))
    old = sample_event("Request", 5, version=1)
    _produce(settings, topic, [old_writer(old, SerializationContext(topic, MessageField.VALUE))])
    value, p, o = _consume(settings, topic, 1)[0]
    decoded = make_codec(topic, "Request", schema_registry.url).decode(value, partition=p, offset=o)
    assert decoded["request_id"] == old["request_id"] and decoded["metadata"] == {}


@pytest.mark.parametrize("fmt", ["single-object", "confluent"])
def test_garbage_on_the_wire_is_a_typed_error_with_its_offset(fmt: str, settings: Settings,
                                                              topics: dict[str, str],
                                                              request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("schema_registry").url if fmt == "confluent" else None
    topic = topics["deadletter"]
    garbage = [b"", b"\x00\x00\x00\x7f\xffjunk", b"\xc3\x01" + b"\x09" * 8, b"plain text"]
    _produce(settings, topic, garbage)
    codec = make_codec(topic, "DeadLetter", url)
    errors: list[EventDecodeError] = []
    for value, p, o in _consume(settings, topic, len(garbage)):
        with pytest.raises(EventDecodeError) as info:
            codec.decode(value, partition=p, offset=o)
        assert f"{topic}[{p}]@{o}" in str(info.value)
        errors.append(info.value)
    assert len(errors) == len(garbage)
    kinds = {type(e) for e in errors}
    assert MalformedEventError in kinds and (UnknownSchemaError in kinds)
