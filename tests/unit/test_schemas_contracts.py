"""The event contracts: every schema is well formed, documented, and readable by its successors."""

from __future__ import annotations

import copy
import io
import json
from typing import Any, get_type_hints

import pytest
from fastavro import schemaless_reader, schemaless_writer

from schemas import EventType, check_backward, default_catalog
from schemas import events as typed
from schemas.catalog import AVRO_DIR
from schemas.samples import sample_event

CATALOG = default_catalog()
NAMES = CATALOG.names()


def test_one_schema_per_event_type() -> None:
    assert set(NAMES) == {e.value for e in EventType}
    assert len(list(AVRO_DIR.glob("*.avsc"))) == len(EventType)


def _fields(schema: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = []
    for f in schema.get("fields", []):
        out.append((f"{path}{f['name']}", f))
        for t in f["type"] if isinstance(f["type"], list) else [f["type"]]:
            inner = t.get("items", t.get("values", t)) if isinstance(t, dict) else None
            if isinstance(inner, dict) and inner.get("type") == "record":
                out += _fields(inner, f"{path}{f['name']}.")
    return out


@pytest.mark.parametrize("name", NAMES)
def test_every_field_is_documented_and_optional_fields_default_to_null(name: str) -> None:
    for path, f in _fields(CATALOG.current(name).source):
        assert f.get("doc"), f"{name}.{path} has no doc"
        if isinstance(f["type"], list) and f["type"][0] == "null":
            assert f.get("default", "missing") is None, f"{name}.{path} is optional without default null"


@pytest.mark.parametrize("name", NAMES)
def test_every_historical_version_is_backward_compatible(name: str) -> None:
    versions = CATALOG.versions(name)
    current = versions[-1]
    for old in versions[:-1]:
        assert check_backward(old.source, current.source) == [], f"{name} v{old.version} -> current"


@pytest.mark.parametrize("name", NAMES)
def test_old_events_decode_with_the_current_schema(name: str) -> None:
    """Proven with data, not only by the checker: write with each old version, read with the current."""
    versions = CATALOG.versions(name)
    current = versions[-1]
    for old in versions[:-1]:
        for seed in range(25):
            record = sample_event(name, seed, version=old.version)
            buf = io.BytesIO()
            schemaless_writer(buf, old.parsed, record)
            buf.seek(0)
            decoded = schemaless_reader(buf, old.parsed, current.parsed)
            assert isinstance(decoded, dict)
            for field in current.source["fields"]:
                if field["name"] in record:
                    _agrees(decoded[field["name"]], record[field["name"]])
                else:
                    assert decoded[field["name"]] == field["default"]


def _agrees(decoded: object, written: object) -> None:
    """Equal, except that records nested in the new version may add fields, all read as their null default."""
    if isinstance(written, dict):
        assert isinstance(decoded, dict)
        for key, value in decoded.items():
            if key in written:
                _agrees(value, written[key])
            else:
                assert value is None, f"added field {key} read as {value!r}, not its default"
    elif isinstance(written, list) and written and isinstance(written[0], dict):
        assert isinstance(decoded, list) and len(decoded) == len(written)
        for d, w in zip(decoded, written, strict=True):
            _agrees(d, w)
    else:
        assert decoded == written


def test_request_really_evolved() -> None:
    """v1 lacked session_id and metadata; a v1 event reads with defaults under v2. v3 added the reply
    partition and tool calls, v4 the caller's deadline."""
    v1, v2, v3, v4 = CATALOG.versions("Request")
    assert len({v1.fingerprint, v2.fingerprint, v3.fingerprint, v4.fingerprint}) == 4
    assert "reply_partition" in {f["name"] for f in v3.source["fields"]}
    added = {f["name"] for f in v4.source["fields"]} - {f["name"] for f in v3.source["fields"]}
    assert added == {"deadline_at"}
    v1_names = {f["name"] for f in v1.source["fields"]}
    assert {"session_id", "metadata"} - v1_names == {"session_id", "metadata"}


def _request() -> dict[str, Any]:
    return copy.deepcopy(CATALOG.current("Request").source)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda s: s["fields"].append({"name": "x", "type": "int"}), "x: added without a default"),
        (lambda s: s["fields"][0].update(type="int"), "request_id: writer type string cannot be read as int"),
        (lambda s: s["fields"][-1].update(type="int"), "created_at: writer type long cannot be read as int"),
        (lambda s: next(f for f in s["fields"] if f["name"] == "params")["type"]["fields"].append(
            {"name": "seed", "type": "long"}), "params.seed: added without a default"),
        (lambda s: next(f for f in s["fields"] if f["name"] == "region").update(type="string"),
         "region: writer type null cannot be read as string"),
    ],
)
def test_checker_finds_incompatible_changes(mutate: Any, expected: str) -> None:
    new = _request()
    mutate(new)
    problems = check_backward(_request(), new)
    assert any(expected in p for p in problems), problems


def test_checker_accepts_promotions_and_enum_growth() -> None:
    old = {"type": "record", "name": "R", "fields": [
        {"name": "n", "type": "int"}, {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A"]}}]}
    grown = {"type": "enum", "name": "E", "symbols": ["A", "B"]}
    new = {"type": "record", "name": "R",
           "fields": [{"name": "n", "type": "double"}, {"name": "e", "type": grown}]}
    assert check_backward(old, new) == []
    assert check_backward(new, old) == ["n: writer type double cannot be read as int",
                                        "e: enum symbols ['B'] removed and the reader enum has no default"]


@pytest.mark.parametrize("typed_dict", [typed.Request, typed.Response, typed.Telemetry, typed.DeadLetter])
def test_typed_dicts_match_the_schemas(typed_dict: type) -> None:
    schema = CATALOG.current(typed_dict.__name__).source
    assert list(get_type_hints(typed_dict)) == [f["name"] for f in schema["fields"]]


def test_avsc_files_are_json_with_versions() -> None:
    for path in AVRO_DIR.rglob("*.avsc"):
        data = json.loads(path.read_text())
        assert isinstance(data.get("streamgate_version"), int), path
