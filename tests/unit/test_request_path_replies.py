"""The request path's part in request-reply: the reply partition travels to the routed request (also
through the byte splice) and to a rejection's header; tools need the `tools` capability; malformed
pass-through JSON is rejected with a reason."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from gateway_consumer.dispatch.replies import header_reply_partition
from gateway_consumer.streaming import output_may_change
from schemas import SingleObjectCodec
from schemas.events import REPLY_PARTITION_HEADER
from schemas.splice import RoutedSplicer
from schemas.topics import Topic
from shared.policy.config import load_policy
from shared.policy.holder import PolicyHolder
from streamgate.catalog import default_catalog
from streamgate.config import load_settings
from streams.claims import BatchedClaims
from streams.guardrails.access import check_access
from streams.io import StageIO
from streams.pipeline import RequestPath, RequestPathDeps
from streams.route.health import StaticHealth
from streams.route.stage import route_stage
from streams.validate.rules import validate_request
from tests.unit.test_request_path_rules import event

REQUEST, ROUTED = SingleObjectCodec("requests", "Request"), SingleObjectCodec("routed", "RoutedRequest")
TOOLS = json.dumps([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])


def _v3(**over: Any) -> dict[str, Any]:
    """A v3 request: the rules' sample with every new field present."""
    base = event(**over)
    base["messages"] = [{"tool_calls_json": None, "tool_call_id": None} | m for m in base["messages"]]
    base["params"] = {"tools_json": None, "tool_choice_json": None, "response_schema_json": None,
                      "extra_json": None} | base["params"]
    return {"reply_partition": None} | base


@pytest.mark.parametrize("reply", [None, 0, 7, 4095])
def test_the_splice_carries_the_reply_partition_and_tool_fields(reply: int | None) -> None:
    splicer = RoutedSplicer()
    assert splicer.enabled, "the v3 Request/RoutedRequest layouts must still splice"
    request = _v3(reply_partition=reply, params={**_v3()["params"], "tools_json": TOOLS, "stream": True,
                                                 "extra_json": '{"seed": 3}'})
    request["messages"].append({"role": "assistant", "content": "", "name": None, "tool_call_id": None,
                                "tool_calls_json": '[{"id": "c1"}]'})
    routed = route_stage(request, load_policy(), StaticHealth(), random.Random(1))
    assert isinstance(routed, dict) and routed["reply_partition"] == reply
    spliced = splicer.splice(REQUEST.encode(request), routed)
    assert spliced == ROUTED.encode(routed)
    decoded = ROUTED.decode(spliced)
    assert decoded["reply_partition"] == reply and decoded["params"]["tools_json"] == TOOLS
    assert decoded["messages"][-1]["tool_calls_json"] == '[{"id": "c1"}]'


def _process(request: dict[str, Any]) -> tuple[list[Any], StageIO]:
    io = StageIO(load_settings())
    path = RequestPath(io, RequestPathDeps(policy=PolicyHolder(load_policy()), rng=random.Random(1)))
    raw = io.codecs[Topic.REQUESTS].encode(request)
    return path.process(raw, b"k", 0, 1, BatchedClaims({}, 600_000).duplicate, 1_000), io


def test_a_rejection_names_the_reply_partition_in_a_header_and_a_routed_request_in_its_body() -> None:
    outputs, io = _process(_v3(reply_partition=5, model="gpt-17-ultra"))  # unknown model: rejected
    [rejected] = [o for o in outputs if o.topic == io.names[Topic.REJECTED]]
    assert rejected.headers == [(REPLY_PARTITION_HEADER, b"5")]
    assert header_reply_partition(rejected.headers) == 5
    assert all(o.headers is None for o in outputs if o is not rejected)
    outputs, io = _process(_v3(reply_partition=None, model="gpt-17-ultra"))
    assert all(o.headers is None for o in outputs)
    outputs, io = _process(_v3(reply_partition=3))
    [routed] = [o for o in outputs if o.topic == io.names[Topic.ROUTED]]
    assert io.codecs[Topic.ROUTED].decode(routed.value)["reply_partition"] == 3 and routed.headers is None


def test_header_parsing_tolerates_absent_and_garbage_values() -> None:
    assert header_reply_partition(None) is None
    assert header_reply_partition([("other", b"1")]) is None
    assert header_reply_partition([(REPLY_PARTITION_HEADER, b"x")]) is None
    assert header_reply_partition([(REPLY_PARTITION_HEADER, b"12")]) == 12


def test_tools_need_the_tools_capability() -> None:
    with_tools = {**_v3()["params"], "tools_json": TOOLS}
    assert check_access(_v3(params=with_tools), load_policy()) is None
    marketing = _v3(team="marketing", project="copy", model="fast", params=with_tools)
    denied = check_access(marketing, load_policy())
    assert denied is not None and denied.reason_code == "capability_denied" and "tools" in denied.message
    schema = {**_v3()["params"], "response_schema_json": '{"name": "x", "schema": {}}'}
    assert check_access(_v3(team="marketing", project="copy", model="fast", params=schema),
                        load_policy()) is None  # marketing has `json`


@pytest.mark.parametrize(("params", "messages_extra"), [
    ({"tools_json": "[not json"}, None),
    ({"tools_json": '{"type": "function"}'}, None),  # an object, not the array
    ({"extra_json": "[1]"}, None),
    ({"response_schema_json": '"a string"'}, None),
    ({"tool_choice_json": "sometimes"}, None),
    ({}, "{not an array}"),
])
def test_malformed_pass_through_json_is_rejected(params: dict[str, Any], messages_extra: str | None) -> None:
    request = _v3(params={**_v3()["params"], **params})
    if messages_extra is not None:
        request["messages"][0]["tool_calls_json"] = messages_extra
    rejection = validate_request(request, load_policy(), default_catalog())
    assert rejection is not None and rejection.reason_code == "invalid_params"


def test_valid_pass_through_json_and_reply_partition_pass_validation() -> None:
    params = {**_v3()["params"], "tools_json": TOOLS, "tool_choice_json": "auto", "extra_json": '{"seed": 1}',
              "response_schema_json": '{"name": "x", "schema": {"type": "object"}}'}
    assert validate_request(_v3(params=params, reply_partition=0), load_policy(), default_catalog()) is None
    negative = validate_request(_v3(reply_partition=-1), load_policy(), default_catalog())
    assert negative is not None and negative.reason_code == "invalid_reply_partition"


def test_streams_are_checked_before_they_are_sent_unless_nothing_could_change_them() -> None:
    policy = load_policy()
    routed = {"team": "search", "params": _v3()["params"]}
    assert output_may_change(routed, policy)  # the default PII actions redact
    relaxed = policy.model_copy(update={"guardrails": policy.guardrails.model_copy(
        update={"pii_default": "allow", "pii": {}})})
    assert not output_may_change(routed, relaxed)
    as_json = {"team": "search", "params": {**_v3()["params"], "response_format": "json_object"}}
    assert output_may_change(as_json, relaxed)


def test_a_redacted_stream_releases_exactly_what_the_final_check_sends() -> None:
    """Pieces of any size, entities split across pieces: what was released, plus the rest after the
    final check, is the checked answer, and no entity is ever released raw."""
    from gateway_consumer.output_guard import check_output
    from gateway_consumer.streaming import HOLD, StreamingRedactor

    policy = load_policy()
    answer = ("Contact jane.roe@example.com or call about card 4111 1111 1111 1111. " * 6
              + "Also bob@example.org, then jane.roe@example.com again. " + "filler words " * 40)
    routed = {"request_id": "r", "team": "support"}
    checked = check_output(routed, answer, policy).content
    for size in (1, 3, 7, 50, 400):
        redactor = StreamingRedactor(policy, "support")
        released = ""
        for i in range(0, len(answer), size):
            piece = redactor.feed(answer[i:i + size])
            assert "@example" not in piece and "4111 1111" not in piece
            released += piece
        assert len(released) > 0 and len(answer) - redactor.released <= HOLD + 40  # it did stream
        assert released + redactor.rest(checked) == checked


def test_a_blocked_entity_stops_the_pieces() -> None:
    from gateway_consumer.streaming import StreamingRedactor

    policy = load_policy()  # US_SSN: block
    redactor = StreamingRedactor(policy, "search")
    released = "".join(redactor.feed(c) for c in "my number is 123-45-6789 " + "x " * 200)
    assert "123-45" not in released and redactor.blocked


def test_output_check_redacts_tool_call_arguments() -> None:
    """A model's tool call carries what it was told: its arguments pass the same PII check as text."""
    import json

    from gateway_consumer.output_guard import check_output

    policy = load_policy()
    routed = {"request_id": "r", "trace_id": "t", "team": "search", "project": "ranker", "api_key_id": "k",
              "user_id": None, "tags": {}}
    calls = [{"id": "c1", "type": "function",
              "function": {"name": "send_mail", "arguments": json.dumps({"to": "jane.roe@example.com"})}},
             {"id": "c2", "type": "function", "function": {"name": "noop", "arguments": "{}"}}]
    checked = check_output(routed, "sending it now", policy, calls)
    assert checked.failure is None and checked.tool_calls is not None
    assert json.loads(checked.tool_calls[0]["function"]["arguments"]) == {"to": "<EMAIL_1>"}
    assert checked.tool_calls[1] is calls[1]  # untouched calls are passed through as they were
    assert calls[0]["function"]["arguments"] != checked.tool_calls[0]["function"]["arguments"]
    assert [f["type"] for v in checked.verdicts for f in v["entities"]] == ["EMAIL"]
    blocked = check_output(routed, "ok", policy, [{"id": "c", "type": "function", "function": {
        "name": "file", "arguments": json.dumps({"ssn": "123-45-6789"})}}])
    assert blocked.failure == "output_pii_blocked"
