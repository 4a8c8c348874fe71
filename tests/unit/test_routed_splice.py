"""The spliced RoutedRequest bytes (schemas/splice.py) are exactly what encoding the record gives."""

from __future__ import annotations

import random
from typing import Any

import pytest

from schemas import SingleObjectCodec
from schemas.samples import sample_event
from schemas.splice import RoutedSplicer, zigzag_long
from shared.policy.config import load_policy
from shared.traffic import workload
from streams.route.health import StaticHealth
from streams.route.stage import route_stage

REQUEST, ROUTED = SingleObjectCodec("requests", "Request"), SingleObjectCodec("routed", "RoutedRequest")


def _routed(event: dict[str, Any], seed: int) -> dict[str, Any]:
    routed = route_stage(event, load_policy(), StaticHealth(), random.Random(seed))
    assert isinstance(routed, dict), routed
    return routed


@pytest.mark.parametrize("n", [0, 1, 127, 128, -1, -65, 2**40, 1_795_601_494_510, -(2**63), 2**63 - 1])
def test_zigzag_matches_fastavro(n: int) -> None:
    import io

    from fastavro import schemaless_writer
    out = io.BytesIO()
    schemaless_writer(out, "long", n)
    assert zigzag_long(n) == out.getvalue()


def test_spliced_bytes_equal_the_encoded_routed_request_for_the_workload() -> None:
    splicer = RoutedSplicer()
    assert splicer.enabled
    teams = load_policy().teams
    events = [e for r in workload.requests(300, seed=3) if (e := r.to_event())["team"] in teams]
    spliced = 0
    for i, event in enumerate(events):
        routed = route_stage(event, load_policy(), StaticHealth(), random.Random(i))
        if not isinstance(routed, dict):
            continue  # rejected by routing (e.g. residency): nothing to splice
        value = splicer.splice(REQUEST.encode(event), routed)
        assert value == ROUTED.encode(routed), event["request_id"]
        assert ROUTED.decode(value) == ROUTED.decode(ROUTED.encode(routed))
        spliced += 1
    assert spliced > 200


def test_a_request_in_another_schema_or_not_ending_in_its_created_at_is_not_spliced() -> None:
    splicer = RoutedSplicer()
    event = {**sample_event("Request", seed=4), "team": "search", "model": "gpt-4o-mini", "region": None}
    routed = _routed(event, 1)
    raw = REQUEST.encode(event)
    assert splicer.splice(raw, routed) == ROUTED.encode(routed)
    assert splicer.splice(raw, {**routed, "created_at": routed["created_at"] + 1}) is None
    assert splicer.splice(b"\xc3\x01" + b"\x00" * 8 + raw[10:], routed) is None  # another fingerprint


def test_a_leading_string_field_is_replaced_in_the_bytes_as_an_encode_would() -> None:
    from schemas.splice import StringFieldSplicer

    codec = SingleObjectCodec("requests", "Request")
    splicer = StringFieldSplicer("Request", "api_key_id")
    assert splicer.enabled
    for seed in range(30):
        event = sample_event("Request", seed)
        for new in ("key_0123456789abcdef", "", "ü" * 200):
            spliced = splicer.replace(codec.encode(event), new)
            assert spliced == codec.encode({**event, "api_key_id": new})
    assert splicer.replace(b"\x00garbage", "x") is None
    assert not StringFieldSplicer("Request", "messages").enabled
