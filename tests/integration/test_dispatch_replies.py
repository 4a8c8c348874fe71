"""Request-reply through the dispatcher, on the real broker: the final answer on `replies` in the partition
the request named (once, equal to its `responses` record), streamed pieces on `replies.chunks`, tool
calls, Anthropic streaming, and a kill -9 mid-stream.

The rig's policy lets team `search` see raw answers (every output PII action `allow`), so its streams
flow piece by piece; team `support` redacts e-mail addresses, so its streams flow through the streaming
redactor (held-back tail), and a JSON-format stream comes as one checked piece.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from schemas import make_codec
from shared.guardrails.pii import ENTITY_TYPES
from shared.policy.config import GATEWAY_FILE
from shared.policy.publish import publish_policy
from streamgate.config import Settings
from streamgate.kafka.clients import consumer_config
from tests.conftest import free_port
from tests.helpers.dispatch import DispatchRig
from tests.helpers.dispatch import routed as routed_event

pytestmark = [pytest.mark.kafka]

POLICY_VERSION = "test-replies"
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                          "required": ["city"]}}}]


def routed(targets: list[dict[str, Any]], content: str, *, reply_partition: int | None = None,
           **more: Any) -> dict[str, Any]:
    """A routed request whose caller waits on `reply_partition` of `replies`."""
    return routed_event(targets, content, **more) | {"reply_partition": reply_partition}


class Replies:
    """Reads `replies` and `replies.chunks` (read_committed), keeping each record's partition and time."""

    def __init__(self, settings: Settings, topics: dict[str, str]) -> None:
        self.topics = topics
        group = f"replies-{uuid.uuid4().hex[:6]}"
        self.consumer = Consumer(consumer_config(settings, group_id=group, role="admin"))
        # every partition from the start, as a test observer (a waiter assigns only its own partition)
        meta = self.consumer.list_topics(timeout=10).topics
        names = (topics["replies"], topics["replies.chunks"])
        self.consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING)
                              for t in names for p in meta[t].partitions])
        self.codecs = {topics["replies"]: make_codec(topics["replies"], "Response"),
                       topics["replies.chunks"]: make_codec(topics["replies.chunks"], "ResponseChunk")}
        # per request id: (partition, Kafka timestamp, value)
        self.answers: dict[str, list[tuple[int, int, dict[str, Any]]]] = defaultdict(list)
        self.chunks: dict[str, list[tuple[int, int, dict[str, Any]]]] = defaultdict(list)

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for m in self.consumer.consume(500, timeout=0.2):
                if m.error() is not None:
                    continue
                value = self.codecs[m.topic() or ""].decode(m.value() or b"")
                into = self.answers if m.topic() == self.topics["replies"] else self.chunks
                into[value["request_id"]].append((m.partition() or 0, m.timestamp()[1], value))

    def by_dispatch(self, request_id: str) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for _, _, chunk in self.chunks[request_id]:
            out[chunk["dispatch_id"]].append(chunk)
        return out


@pytest.fixture
def rig(settings: Settings, topics: dict[str, str], tmp_path: Path) -> Iterator[DispatchRig]:
    raw = yaml.safe_load(GATEWAY_FILE.read_text())
    raw["version"] = POLICY_VERSION
    raw["teams"]["search"]["pii"] = dict.fromkeys(ENTITY_TYPES, "allow")
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(raw))
    publish_policy(settings, path, actor="test")
    rig = DispatchRig(settings, topics, tmp_path, free_port())
    rig.simulator.start()
    rig.start_dispatcher()
    log = tmp_path / "dispatcher.log"
    deadline = time.monotonic() + 60
    while f"gateway policy {POLICY_VERSION} is now in force" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "the dispatcher never took the test policy"
        time.sleep(0.2)
    try:
        yield rig
    finally:
        rig.close()


@pytest.fixture
def replies(settings: Settings, topics: dict[str, str]) -> Iterator[Replies]:
    reader = Replies(settings, topics)
    yield reader
    reader.consumer.close()


def _answered(rig: DispatchRig, replies: Replies, events: list[dict[str, Any]], linger_s: float = 1.5,
              timeout_s: float = 60) -> None:
    rig.collect({e["request_id"] for e in events}, timeout_s=timeout_s, linger_s=0)
    replies.poll(linger_s)


def _only_answer(replies: Replies, rig: DispatchRig, event: dict[str, Any]) -> dict[str, Any]:
    """The one answer on `replies`, in the partition the request named, equal to its `responses` record."""
    [(partition, _, answer)] = replies.answers[event["request_id"]]
    assert partition == event["reply_partition"]
    [response] = rig.responses[event["request_id"]]
    assert answer == response
    return answer


def test_the_answer_goes_to_the_named_reply_partition_once(rig: DispatchRig, replies: Replies,
                                                           topics: dict[str, str]) -> None:
    from schemas.events import REPLY_PARTITION_HEADER
    from shared.guardrails.outcome import Rejection
    from streams.io import rejected_response

    waiting = [routed([{"model": "sim-small"}], f"q{p}", reply_partition=p) for p in (0, 2, 5)]
    nobody = routed([{"model": "sim-small"}], "fire and forget")
    beyond = routed([{"model": "sim-small"}], "no such partition", reply_partition=99)
    denied = routed([{"model": "sim-small"}], "denied", reply_partition=4)
    codec = make_codec(topics["requests.rejected"], "Response")
    rejection = rejected_response(denied, Rejection("guard", "access_denied", "not for you"))
    rig.producer.produce(topics["requests.rejected"], codec.encode(rejection), denied["request_id"].encode(),
                         headers=[(REPLY_PARTITION_HEADER, b"4")])
    rig.send([*waiting, nobody, beyond])
    _answered(rig, replies, [*waiting, nobody, beyond, denied])
    for event in waiting:
        assert _only_answer(replies, rig, event)["status"] == "ok"
    assert _only_answer(replies, rig, denied)["status"] == "rejected"
    assert nobody["request_id"] not in replies.answers
    # a reply partition the topic does not have: answered on `responses` only, and the dispatcher lives on
    assert rig.responses[beyond["request_id"]][0]["status"] == "ok"
    assert beyond["request_id"] not in replies.answers
    assert not replies.chunks, "nothing was streamed"
    later = routed([{"model": "sim-small"}], "still there", reply_partition=1)
    rig.send([later])
    _answered(rig, replies, [later], linger_s=0.5)
    _only_answer(replies, rig, later)


def _assert_streamed(replies: Replies, rig: DispatchRig, event: dict[str, Any], provider: str,
                     model: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    answer = _only_answer(replies, rig, event)
    [(dispatch_id, chunks)] = replies.by_dispatch(event["request_id"]).items()
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))
    assert (chunks[0]["provider"], chunks[0]["model"]) == (provider, model)
    assert all(c["provider"] is None for c in chunks[1:])
    assert all(p == event["reply_partition"] for p, _, _ in replies.chunks[event["request_id"]])
    assert "".join(c["delta"] for c in chunks) == answer["content"]
    assert dispatch_id
    [attempt] = rig.telemetry[event["request_id"]]
    assert attempt["stream"] and attempt["usage_source"] == "provider"
    assert attempt["ttft_ms"] is not None and 0 < attempt["ttft_ms"] < attempt["latency_ms"]
    assert answer["usage"]["prompt_tokens"] > 0 and answer["usage"]["completion_tokens"] > 0
    assert answer["cost_nanousd"] == attempt["cost_nanousd"] > 0
    return answer, chunks


@pytest.mark.parametrize("provider", ["sim", "sim_anthropic"])
def test_a_stream_flows_piece_by_piece_before_the_answer_commits(rig: DispatchRig, replies: Replies,
                                                                 provider: str) -> None:
    rig.simulator.set_profile("sim-small", median_ms=600, p99_ms=600, ttft_share=0.2,  # a priced model
                              completion_tokens_min=60, completion_tokens_max=60)
    event = routed([{"provider": provider, "model": "sim-small"}], "stream it", stream=True,
                   reply_partition=3)
    rig.send([event])
    _answered(rig, replies, [event])
    _, chunks = _assert_streamed(replies, rig, event, provider, "sim-small")
    assert len(chunks) >= 5, "60 words in pieces of 8"
    # pieces were in the log while the provider was still answering, long before the answer committed
    times = [ts for _, ts, _ in replies.chunks[event["request_id"]]]
    [(_, answered_at, _)] = replies.answers[event["request_id"]]
    assert answered_at - times[0] >= 300, "the first piece must not wait for the whole answer"
    assert times == sorted(times) and times[-1] <= answered_at


def test_a_redacted_stream_flows_in_pieces_and_never_carries_the_entity(rig: DispatchRig,
                                                                         replies: Replies) -> None:
    filler = " ".join(f"word{i}" for i in range(120))
    event = routed([{"model": "sim-small"}], f"ECHO: mail jane.roe@example.com today. {filler}",
                   team="support", stream=True, reply_partition=0)
    rig.send([event])
    _answered(rig, replies, [event])
    answer = _only_answer(replies, rig, event)
    chunks = [c for _, _, c in replies.chunks[event["request_id"]]]
    assert len(chunks) > 1 and "".join(c["delta"] for c in chunks) == answer["content"]
    assert "<EMAIL_1>" in answer["content"] and not any("jane.roe" in c["delta"] for c in chunks)


def test_a_cached_stream_is_one_piece(rig: DispatchRig, replies: Replies) -> None:
    first = routed([{"model": "cached-stream"}], "same question", stream=True, temperature=0.0,
                   reply_partition=2)
    rig.send([first])
    _answered(rig, replies, [first])
    repeat = routed([{"model": "cached-stream"}], "same question", stream=True, temperature=0.0,
                    reply_partition=2)
    rig.send([repeat])
    _answered(rig, replies, [repeat])
    answer = _only_answer(replies, rig, repeat)
    assert answer["cache_hit"]
    [chunk] = [c for _, _, c in replies.chunks[repeat["request_id"]]]
    assert chunk["delta"] == answer["content"] == _only_answer(replies, rig, first)["content"]


@pytest.mark.parametrize("provider", ["sim", "sim_anthropic"])
def test_a_tool_call_round_trip(rig: DispatchRig, replies: Replies, provider: str) -> None:
    ask = routed([{"provider": provider, "model": "sim-small"}], "CALL_TOOL weather in Oslo please",
                 tools_json=json.dumps(TOOLS), stream=True, reply_partition=1)
    rig.send([ask])
    _answered(rig, replies, [ask])
    answer = _only_answer(replies, rig, ask)
    assert answer["status"] == "ok" and answer["finish_reason"] == "tool_calls"
    [call] = json.loads(answer["tool_calls_json"])
    assert call["type"] == "function" and call["function"]["name"] == "get_weather" and call["id"]
    assert json.loads(call["function"]["arguments"])["city"]
    pieces = [c for _, _, c in replies.chunks[ask["request_id"]]]
    streamed = "".join(d["function"].get("arguments") or "" for c in pieces
                       for d in json.loads(c["tool_calls_json"] or "[]"))
    assert streamed == call["function"]["arguments"]  # the tool call was streamed as deltas

    follow = routed([{"provider": provider, "model": "sim-small"}], "CALL_TOOL weather in Oslo please",
                    tools_json=json.dumps(TOOLS), reply_partition=1)
    follow["messages"] += [
        {"role": "assistant", "content": "", "name": None, "tool_calls_json": json.dumps([call]),
         "tool_call_id": None},
        {"role": "tool", "content": "sunny, 21C", "name": None, "tool_calls_json": None,
         "tool_call_id": call["id"]}]
    rig.send([follow])
    _answered(rig, replies, [follow])
    final = _only_answer(replies, rig, follow)
    assert final["content"] == "tool said: sunny, 21C" and final["finish_reason"] == "stop"
    assert final["tool_calls_json"] is None


def test_a_streamed_tool_call_goes_out_redacted_whole_never_in_raw_fragments(rig: DispatchRig,
                                                                              replies: Replies) -> None:
    """Team support redacts e-mail addresses: a tool call's arguments are held until the output check
    redacted them (fragments cannot be judged one by one), then streamed as one whole call."""
    tools = [{"type": "function", "function": {"name": "send_mail", "parameters": {
        "type": "object", "properties": {"to": {"type": "string", "const": "jane.roe@example.com"}}}}}]
    ask = routed([{"model": "sim-small"}], "CALL_TOOL mail her", team="support",
                 tools_json=json.dumps(tools), stream=True, reply_partition=1)
    rig.send([ask])
    _answered(rig, replies, [ask])
    answer = _only_answer(replies, rig, ask)
    [call] = json.loads(answer["tool_calls_json"])
    assert json.loads(call["function"]["arguments"]) == {"to": "<EMAIL_1>"}
    pieces = [c for _, _, c in replies.chunks[ask["request_id"]]]
    assert pieces and not any("jane.roe" in json.dumps(c) for c in pieces)
    [streamed] = [d for c in pieces for d in json.loads(c["tool_calls_json"] or "[]")]
    assert streamed["function"] == call["function"] and streamed["id"] == call["id"]


def test_no_fallback_once_pieces_were_sent(rig: DispatchRig, replies: Replies) -> None:
    """The first target times out mid-stream: the caller has seen its text, so nothing falls over."""
    rig.simulator.set_profile("stalls", median_ms=3000, p99_ms=3000, ttft_share=0.05,
                              completion_tokens_min=80, completion_tokens_max=80)
    event = routed([{"model": "stalls", "timeout_ms": 1000}, {"model": "sim-small"}], "go", stream=True,
                   reply_partition=5)
    rig.send([event])
    _answered(rig, replies, [event])
    answer = _only_answer(replies, rig, event)
    assert answer["status"] == "failed" and answer["reason_code"] == "stream_interrupted"
    assert replies.chunks[event["request_id"]], "pieces had been sent"
    assert [a["model"] for a in rig.telemetry[event["request_id"]]] == ["stalls"]


@pytest.mark.slow
def test_kill_9_mid_stream_leaves_one_final_answer(rig: DispatchRig, replies: Replies) -> None:
    rig.simulator.set_profile("long", median_ms=4000, p99_ms=4000, ttft_share=0.05,
                              completion_tokens_min=80, completion_tokens_max=80)
    events = [routed([{"model": "long", "timeout_ms": 30000}], f"long story {i}", stream=True,
                     reply_partition=i % 6) for i in range(12)]
    rig.send(events)
    deadline = time.monotonic() + 60
    while len(replies.chunks) < len(events) and time.monotonic() < deadline:
        replies.poll(0.3)
    assert len(replies.chunks) == len(events), "every request streams before the kill"
    assert not replies.answers, "killed before any answer committed"
    assert rig.proc is not None
    os.kill(rig.proc.pid, signal.SIGKILL)
    rig.proc.wait(10)
    rig.start_dispatcher()
    _answered(rig, replies, events, linger_s=3, timeout_s=120)
    for event in events:
        answer = _only_answer(replies, rig, event)
        assert answer["status"] == "ok"
        dispatches = replies.by_dispatch(event["request_id"])
        assert len(dispatches) == 2, "the killed dispatch's pieces stay; the redispatch streams anew"
        last = dispatches[replies.chunks[event["request_id"]][-1][2]["dispatch_id"]]
        assert [c["seq"] for c in last] == list(range(len(last)))
        assert "".join(c["delta"] for c in last) == answer["content"]


@pytest.mark.parametrize("before_commit", [True, False], ids=["answer_before_commit", "after_commit"])
def test_a_waiting_callers_answer_waits_for_the_commit_only_when_callers_read_after_it(
        settings: Settings, topics: dict[str, str], tmp_path: Path, before_commit: bool) -> None:
    """Callers who read before the commit (the default) get their answer at once, outside the transaction,
    which here commits every 4 s; callers who read committed get it with its `responses` record."""
    slow_commits = settings.model_copy(update={
        "dispatch": settings.dispatch.model_copy(update={"commit_interval_ms": 4000}),
        "client": settings.client.model_copy(update={"answer_before_commit": before_commit})})
    rig = DispatchRig(slow_commits, topics, tmp_path, free_port())
    rig.simulator.start()
    rig.start_dispatcher()
    reader = Consumer(consumer_config(settings, group_id=f"commit-{uuid.uuid4().hex[:6]}", role="admin"))
    try:
        meta = reader.list_topics(timeout=10).topics
        reader.assign([TopicPartition(topics["replies"], 2, OFFSET_BEGINNING),
                       *(TopicPartition(topics["responses"], p, OFFSET_BEGINNING)
                         for p in meta[topics["responses"]].partitions)])  # read_committed, both
        codec = make_codec(topics["responses"], "Response")
        seen: dict[str, dict[str, float]] = defaultdict(dict)  # request id -> topic -> first readable

        def read(seconds: float) -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                for m in reader.consume(100, timeout=0.05):
                    if m.error() is None:
                        rid = codec.decode(m.value() or b"")["request_id"]
                        seen[rid].setdefault(m.topic() or "", time.monotonic())

        read(8)  # the dispatcher is up and its first transactions are behind it
        events = [routed([{"model": "sim-small"}], f"q{i}", reply_partition=2) for i in range(3)]
        for event in events:  # 1.3 s apart: at least one lands over a second before a 4 s commit
            rig.send([event])
            read(1.3)
        read(6)
        gaps = []  # seconds the committed record came after the caller's answer
        for event in events:
            times = seen[event["request_id"]]
            assert set(times) == {topics["replies"], topics["responses"]}, times
            gaps.append(times[topics["responses"]] - times[topics["replies"]])
        if before_commit:
            assert min(gaps) > -0.3 and max(gaps) > 1.0, gaps
        else:
            assert all(gap > -0.3 for gap in gaps), f"an answer was readable before its commit: {gaps}"
            assert all(gap < 0.3 for gap in gaps), f"an answer came long after its commit: {gaps}"
    finally:
        reader.close()
        rig.close()
