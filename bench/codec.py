"""Codec and client throughput against their floors.

- encode/decode: `SingleObjectCodec` (framing, fingerprint lookup, error handling) vs bare fastavro
  `schemaless_writer`/`schemaless_reader` on the same records: the price of the contract; and the codec
  with its generated writer and reader against the same codec on fastavro alone (`generated=False`).
- produce: `RequestProducer.send` (validate, encode, delivery future) vs a bare confluent-kafka
  `Producer.produce` of pre-encoded bytes, both to the same real broker.
"""

from __future__ import annotations

import io
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from bench.harness import bench_settings, rate, write_result
from schemas import SingleObjectCodec, default_catalog
from shared.traffic import workload

N = 20_000


def _events() -> list[dict[str, Any]]:
    return [r.to_event() for r in workload.requests(N, seed=11, run_id="bench")]


def measure_codec() -> dict[str, float]:
    events = _events()
    codec = SingleObjectCodec("requests", "Request")
    schema = default_catalog().current("Request").parsed
    encoded = codec.encode_many(events)
    bodies = [e[10:] for e in encoded]

    def bare_encode() -> int:
        for e in events:
            buf = io.BytesIO()
            schemaless_writer(buf, schema, e)
        return len(events)

    def bare_decode() -> int:
        for b in bodies:
            schemaless_reader(io.BytesIO(b), schema, None)
        return len(bodies)

    fastavro_only = SingleObjectCodec("requests", "Request", generated=False)
    out = {
        "bare_encode_per_s": rate(bare_encode),
        "codec_encode_per_s": rate(lambda: len(codec.encode_many(events))),
        "codec_fastavro_encode_per_s": rate(lambda: len(fastavro_only.encode_many(events))),
        "bare_decode_per_s": rate(bare_decode),
        "codec_decode_per_s": rate(lambda: len(codec.decode_many(encoded))),
        "codec_fastavro_decode_per_s": rate(lambda: len(fastavro_only.decode_many(encoded))),
        "mean_event_bytes": sum(map(len, encoded)) / len(encoded),
    }
    out["encode_ratio"] = out["codec_encode_per_s"] / out["bare_encode_per_s"]
    out["decode_ratio"] = out["codec_decode_per_s"] / out["bare_decode_per_s"]
    out["generated_encode_ratio"] = out["codec_encode_per_s"] / out["codec_fastavro_encode_per_s"]
    out["generated_decode_ratio"] = out["codec_decode_per_s"] / out["codec_fastavro_decode_per_s"]
    return out


def measure_produce() -> dict[str, float]:
    from confluent_kafka import Producer

    from streamgate.client import RequestProducer
    from streamgate.kafka.clients import producer_config

    settings = bench_settings()
    requests = list(workload.requests(N, seed=12, run_id="bench"))
    encoded = SingleObjectCodec("requests", "Request").encode_many(r.to_event() for r in requests)
    topic = settings.kafka.topic_prefix + "requests"

    def bare() -> int:
        producer = Producer(producer_config(settings, client_id="bench-bare", role="service"))
        for r, value in zip(requests, encoded, strict=True):
            while True:
                try:
                    producer.produce(topic, value=value, key=r.request_id.encode())
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
        producer.flush(60)
        return len(encoded)

    def client() -> int:
        with RequestProducer(settings, client_id="bench-client") as producer:
            for r in requests:
                producer.send(r)
        return len(requests)

    out = {"bare_produce_per_s": rate(bare, repeats=3), "client_produce_per_s": rate(client, repeats=3)}
    out["produce_ratio"] = out["client_produce_per_s"] / out["bare_produce_per_s"]
    return out


def main() -> dict[str, Any]:
    result: dict[str, Any] = {"events": N, **measure_codec(), **measure_produce()}
    table = [
        ("single-object encode vs bare fastavro", f"{result['codec_encode_per_s']:,.0f}/s vs "
         f"{result['bare_encode_per_s']:,.0f}/s (ratio {result['encode_ratio']:.2f})"),
        ("single-object decode vs bare fastavro", f"{result['codec_decode_per_s']:,.0f}/s vs "
         f"{result['bare_decode_per_s']:,.0f}/s (ratio {result['decode_ratio']:.2f})"),
        ("codec encode, generated writer vs fastavro (same codec)",
         f"{result['codec_encode_per_s']:,.0f}/s vs "
         f"{result['codec_fastavro_encode_per_s']:,.0f}/s (ratio {result['generated_encode_ratio']:.2f})"),
        ("codec decode, generated reader vs fastavro (same codec)",
         f"{result['codec_decode_per_s']:,.0f}/s vs "
         f"{result['codec_fastavro_decode_per_s']:,.0f}/s (ratio {result['generated_decode_ratio']:.2f})"),
        ("client send vs bare produce (real broker)", f"{result['client_produce_per_s']:,.0f}/s vs "
         f"{result['bare_produce_per_s']:,.0f}/s (ratio {result['produce_ratio']:.2f})"),
        ("mean Request event size", f"{result['mean_event_bytes']:.0f} bytes"),
    ]
    write_result("codec", result, table)
    for k, v in table:
        print(f"{k:<45} {v}")
    return result
