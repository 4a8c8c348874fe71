"""The local registry through confluent-kafka's own client: register, look up, survive a restart, refuse
incompatible changes."""

from __future__ import annotations

import json

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from schemas import default_catalog

pytestmark = pytest.mark.kafka


def _schema(name: str, version: int | None = None) -> Schema:
    versions = default_catalog().versions(name)
    chosen = versions[-1] if version is None else versions[version - 1]
    return Schema(json.dumps(chosen.source), "AVRO")


def test_register_lookup_and_restart_keep_ids(schema_registry) -> None:  # type: ignore[no-untyped-def]
    client = SchemaRegistryClient({"url": schema_registry.url})
    v1 = client.register_schema("requests-value", _schema("Request", 1))
    v2 = client.register_schema("requests-value", _schema("Request", 2))
    again = client.register_schema("requests-value", _schema("Request", 2))
    other = client.register_schema("responses-value", _schema("Response"))
    assert v1 != v2 and v2 == again and len({v1, v2, other}) == 3
    assert client.get_subjects() == ["requests-value", "responses-value"]
    assert client.get_versions("requests-value") == [1, 2]
    assert client.get_latest_version("requests-value").schema_id == v2
    found = client.lookup_schema("requests-value", _schema("Request", 1))
    assert (found.schema_id, found.version) == (v1, 1)

    schema_registry.stop()
    schema_registry.start()
    fresh = SchemaRegistryClient({"url": schema_registry.url})
    assert json.loads(fresh.get_schema(v2).schema_str)["name"] == "Request"
    assert fresh.get_latest_version("requests-value").schema_id == v2
    assert fresh.register_schema("responses-value", _schema("Response")) == other


def test_incompatible_schema_is_refused(schema_registry) -> None:  # type: ignore[no-untyped-def]
    client = SchemaRegistryClient({"url": schema_registry.url})
    client.register_schema("requests-value", _schema("Request"))
    broken = default_catalog().current("Request").source | {}
    broken = json.loads(json.dumps(broken))
    broken["fields"].append({"name": "must_have", "type": "string"})
    with pytest.raises(SchemaRegistryError) as info:
        client.register_schema("requests-value", Schema(json.dumps(broken), "AVRO"))
    assert info.value.http_status_code == 409
    assert "must_have: added without a default" in info.value.error_message
    with pytest.raises(SchemaRegistryError) as missing:
        client.get_schema(9999)
    assert missing.value.http_status_code == 404
