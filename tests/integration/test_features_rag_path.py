"""RAG in the request path, through the real broker and a real worker: a request tagged
`rag: docs` is routed with passages of the docs (retrieved from Feast) ahead of its messages."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Consumer

from features.rag import index_docs
from features.store import apply
from schemas import make_codec
from streamgate.client import RequestProducer, build_request
from streamgate.config import Settings
from streamgate.kafka.clients import consumer_config
from tests.conftest import kafka_config

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def worker(settings: Settings, topics: dict[str, str], api_keys: dict[tuple[str, str], str],
           tmp_path: Path) -> Iterator[Settings]:
    state = tmp_path / "state"
    indexed = settings.model_copy(update={"state_dir": state})
    store, _ = apply(indexed)
    assert index_docs(indexed, store, [README]) > 10
    config = tmp_path / "streamgate.yaml"
    config.write_text(yaml.safe_dump({"state_dir": str(state), "features": {"rag": True}, "kafka": {
        **kafka_config(settings)}}))
    with open(tmp_path / "worker.log", "wb") as log:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "streamgate"), "streams", "worker",
                                 "--config", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        yield indexed
    finally:
        proc.terminate()
        proc.wait(20)


def test_tagged_request_is_routed_with_retrieved_context(worker: Settings, topics: dict[str, str],
                                                         api_keys: dict[tuple[str, str], str]) -> None:
    question = "Which environment variables override the configuration file?"
    common = {"team": "search", "project": "ranker", "model": "gpt-4o-mini",
              "api_key": api_keys[("search", "ranker")]}
    tagged = build_request(**common, messages=[{"role": "user", "content": question}], tags={"rag": "docs"})
    plain = build_request(**common, messages=[{"role": "user", "content": question}])
    with RequestProducer(worker) as producer:
        producer.send(tagged)
        producer.send(plain)
    consumer = Consumer(consumer_config(worker, group_id=f"rag-{uuid.uuid4().hex[:6]}", role="admin"))
    consumer.subscribe([topics["requests.routed"]])
    codec = make_codec(topics["requests.routed"], "RoutedRequest")
    routed: dict[str, dict[str, object]] = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(routed) < 2:
        for m in consumer.consume(100, timeout=0.5):
            if m.error() is None:
                event = codec.decode(m.value() or b"")
                routed[event["request_id"]] = event
    consumer.close()
    with_context, without = routed[tagged.request_id], routed[plain.request_id]
    messages = with_context["messages"]
    assert isinstance(messages, list) and messages[0]["role"] == "system"
    assert "STREAMGATE_STATE_DIR" in messages[0]["content"]  # README's Configuration section
    assert messages[1]["content"] == question
    assert with_context["metadata"]["rag"].startswith("docs:")  # type: ignore[index]
    assert [m["role"] for m in without["messages"]] == ["user"]  # type: ignore[union-attr]
