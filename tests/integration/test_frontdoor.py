"""The front door through the real broker, driven by clients this project did not write: the official
`openai` and `anthropic` SDKs, and curl for the raw SSE framing. Also the Kafka request-reply client.

One pipeline per module (simulator, the request path and dispatcher as deployed by default: one fused
gateway worker, `streamgate serve`), under its own topic prefix; keys are real keys from `streamgate keys`'
admin API.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from confluent_kafka import Consumer, TopicPartition

from apps.demo.processes import Components, use_simulator_port
from apps.stack import request_stages, start_simulator
from gateway_consumer.simulator import SimulatorProcess
from schemas import make_codec
from schemas.topics import physical_name
from shared.identity.admin import KeyAdmin
from streamgate.client import (
    AsyncGatewayClient,
    GatewayClient,
    ReplyTimeoutError,
    RequestProducer,
    RequestRejectedError,
    build_request,
)
from streamgate.config import Settings
from streamgate.kafka.clients import consumer_config
from streamgate.kafka.topics import apply_spec
from tests.conftest import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

MODEL = "gpt-4o-mini"
USER: Any = [{"role": "user", "content": "Say something about streams."}]


@dataclass
class Door:
    settings: Settings
    url: str
    key: str
    other_team_key: str
    simulator: SimulatorProcess
    components: Components

    def openai(self, **kw: object) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=self.key, **kw)

    def anthropic(self, **kw: object) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key=self.key, **kw)

    def health(self) -> dict[str, object]:
        body: dict[str, object] = httpx.get(self.url + "/healthz", timeout=5).json()
        return body


@pytest.fixture(scope="module")
def door(kafka_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Door]:
    state = tmp_path_factory.mktemp("frontdoor")
    kafka = kafka_settings.kafka.model_copy(update={"topic_prefix": f"fd{uuid.uuid4().hex[:6]}."})
    metrics = kafka_settings.metrics.model_copy(update={"enabled": False})
    port = free_port()
    settings = kafka_settings.model_copy(update={
        "kafka": kafka, "state_dir": state, "metrics": metrics,
        "frontdoor": kafka_settings.frontdoor.model_copy(update={"port": port, "timeout_s": 60})})
    settings = use_simulator_port(settings, free_port())
    apply_spec(settings)
    admin = KeyAdmin(settings)
    _, key = admin.create("search", "ranker")
    _, other = admin.create("support", "chatbot")
    with Components(settings, name="frontdoor") as components:
        simulator = start_simulator(settings, components)  # owned by components even if its start fails
        for stage, args in request_stages(settings):  # the default deployment: one fused gateway worker
            components.start(stage, *args)
        components.start("serve", "serve")
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, components)
        yield Door(settings, url, key, other, simulator, components)


def _wait_healthy(url: str, components: Components, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if dead := components.dead():
            raise RuntimeError(f"{dead} exited; see {components.logs}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"the front door did not come up on {url}; see {components.logs}")


def _requests_on_topic(settings: Settings) -> int:
    topic = physical_name("requests", settings.kafka.topic_prefix)
    consumer = Consumer(consumer_config(settings, group_id=f"count-{uuid.uuid4().hex[:6]}", role="admin"))
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in meta.partitions)
    finally:
        consumer.close()


# -- OpenAI SDK -------------------------------------------------------------------------------------------
def test_openai_sdk_plain_completion(door: Door) -> None:
    completion = door.openai().chat.completions.create(model=MODEL, messages=USER, max_tokens=40)
    assert completion.id.startswith("chatcmpl-")
    assert completion.choices[0].message.role == "assistant" and completion.choices[0].message.content
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens > 0


def test_openai_sdk_streams_with_the_usage_chunk(door: Door) -> None:
    stream = door.openai().chat.completions.create(model=MODEL, messages=USER, stream=True,
                                                   stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert (text and finishes == ["stop"]) or finishes == ["length"]
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None and usage.completion_tokens > 0  # never $0


def test_openai_sdk_tool_call(door: Door) -> None:
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "description": "weather in a city",
                                               "parameters": {"type": "object",
                                                              "properties": {"city": {"type": "string"}}}}}]
    completion = door.openai().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Weather in Oslo?"}], tools=tools,
        tool_choice="required")
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls and choice.message.tool_calls[0].function.name == "get_weather"
    json.loads(choice.message.tool_calls[0].function.arguments)


def test_openai_sdk_json_mode(door: Door) -> None:
    completion = door.openai().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Answer in JSON."}],
        response_format={"type": "json_object"})
    assert isinstance(json.loads(completion.choices[0].message.content or ""), dict)


def test_unknown_and_missing_keys_are_401_without_touching_kafka(door: Door) -> None:
    before = _requests_on_topic(door.settings)
    with pytest.raises(openai.AuthenticationError) as err:
        stranger = openai.OpenAI(base_url=door.url + "/v1", api_key="sg-" + "x" * 43, max_retries=0)
        stranger.chat.completions.create(model=MODEL, messages=USER)
    assert err.value.status_code == 401 and "invalid or missing API key" in str(err.value)
    missing = httpx.post(door.url + "/v1/chat/completions", json={"model": MODEL, "messages": USER},
                         timeout=10)
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "authentication_error"
    assert _requests_on_topic(door.settings) == before


def test_bad_requests_are_400(door: Door) -> None:
    headers = {"Authorization": f"Bearer {door.key}"}
    bad_json = httpx.post(door.url + "/v1/chat/completions", content=b"{not json", headers=headers,
                          timeout=10)
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "invalid_json"
    huge = httpx.post(door.url + "/v1/chat/completions", headers=headers, timeout=30,
                      json={"model": MODEL, "messages": [{"role": "user", "content": "x" * 5_000_000}]})
    assert huge.status_code == 400 and huge.json()["error"]["code"] == "request_too_large"
    with pytest.raises(openai.BadRequestError):
        door.openai(max_retries=0).chat.completions.create(model=MODEL, messages=[])
    with pytest.raises(openai.BadRequestError) as err:
        door.openai(max_retries=0).chat.completions.create(model=MODEL, messages=USER, temperature=7)
    assert err.value.status_code == 400


def test_unknown_model_is_404_and_policy_blocks_are_403(door: Door) -> None:
    client = door.openai(max_retries=0)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=USER)
    with pytest.raises(openai.PermissionDeniedError) as err:  # US_SSN: block, in config/gateway.yaml
        client.chat.completions.create(model=MODEL, messages=[
            {"role": "user", "content": "my SSN is 123-45-6789, file my taxes"}])
    assert "pii_blocked" in str(err.value.body)


def test_models_lists_what_the_key_may_use(door: Door) -> None:
    ids = {m.id for m in door.openai().models.list()}
    assert MODEL in ids and "claude-3-5-haiku" in ids


def test_curl_sees_sse_framing(door: Door) -> None:
    body = json.dumps({"model": MODEL, "messages": USER, "stream": True})
    command = ["curl", "-sN", door.url + "/v1/chat/completions", "-H", f"Authorization: Bearer {door.key}",
               "-H", "Content-Type: application/json", "-d", body]
    out = subprocess.run(command, capture_output=True, timeout=60, check=True).stdout.decode()
    events = [e for e in out.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[0][6:])["object"] == "chat.completion.chunk"


def test_a_client_hanging_up_mid_stream_leaves_no_waiter(door: Door) -> None:
    """The caller goes away while its (slow) answer is still in the pipeline: the waiter goes at once."""
    door.simulator.set_profile("gpt-4o", median_ms=4000, p99_ms=4500)
    body = json.dumps({"model": "gpt-4o", "messages": USER, "stream": True}).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {door.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    try:
        with socket.create_connection(("127.0.0.1", door.settings.frontdoor.port)) as sock:
            sock.sendall(head + body)
            deadline = time.monotonic() + 5
            while door.health()["waiting"] != 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert door.health()["waiting"] == 1  # in flight
        deadline = time.monotonic() + 2  # well before the provider would answer
        while door.health()["waiting"] != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert door.health()["waiting"] == 0
    finally:
        httpx.delete(f"{door.simulator.url}/admin/profiles/gpt-4o", timeout=5)


# -- Anthropic SDK ----------------------------------------------------------------------------------------
def test_anthropic_sdk_message_and_stream(door: Door) -> None:
    client = door.anthropic()
    message = client.messages.create(model="claude-3-5-haiku", max_tokens=64, system="be brief",
                                     messages=[{"role": "user", "content": "Hello there"}])
    assert message.type == "message" and message.content[0].type == "text" and message.content[0].text
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    with client.messages.stream(model="claude-3-5-haiku", max_tokens=64,
                                messages=[{"role": "user", "content": "Hello again"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].text == text
    assert final.stop_reason in ("end_turn", "max_tokens") and final.usage.output_tokens > 0


def test_anthropic_sdk_errors(door: Door) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=door.url, api_key="sg-nope", max_retries=0).messages.create(
            model="claude-3-5-haiku", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.NotFoundError):
        door.anthropic(max_retries=0).messages.create(model="nope", max_tokens=10,
                                                      messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.BadRequestError):
        door.anthropic(max_retries=0).messages.create(model="claude-3-5-haiku", max_tokens=10, messages=[])


# -- identity ---------------------------------------------------------------------------------------------
def test_a_key_answers_for_its_own_team_only(door: Door) -> None:
    """The support team's key may not use a model only search may (support: gpt-4o, gpt-4o-mini, ...)."""
    support = openai.OpenAI(base_url=door.url + "/v1", api_key=door.other_team_key, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        support.chat.completions.create(model="claude-3-5-haiku", messages=USER)
    assert support.chat.completions.create(model=MODEL, messages=USER).choices[0].message.content


def test_rate_limit_is_429_with_retry_after_and_the_sdk_waits_it_out(door: Door) -> None:
    """A key allowed 1 request a minute: the second is refused 429 with Retry-After (the seconds left in
    the minute); the openai SDK's own retry honours it and gets an answer once the minute has turned."""
    while time.time() % 60 > 40:  # not at the turn of a minute: the second call must fall in the first's
        time.sleep(0.5)
    _, key = KeyAdmin(door.settings).create("search", "ranker", rpm=1)
    time.sleep(1.0)  # the front door's key ring follows the keys topic
    client = openai.OpenAI(base_url=door.url + "/v1", api_key=key, max_retries=0)
    assert client.chat.completions.create(model=MODEL, messages=USER).choices[0].message.content
    refused = httpx.post(door.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                         json={"model": MODEL, "messages": USER}, timeout=30)
    assert refused.status_code == 429 and refused.json()["error"]["type"] == "rate_limit_error"
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 60 and abs(wait - (60 - time.time() % 60)) <= 3
    began = time.monotonic()
    patient = openai.OpenAI(base_url=door.url + "/v1", api_key=key, max_retries=2)
    assert patient.chat.completions.create(model=MODEL, messages=USER).choices[0].message.content
    assert time.monotonic() - began >= wait - 2  # it waited for the minute to turn, as told


def test_a_call_whose_sdk_gave_up_is_not_sent_to_a_provider(door: Door) -> None:
    """The SDK's own timeout (`x-stainless-read-timeout`, sent by the openai and anthropic SDKs) is the
    request's deadline when shorter than the door's: here it passes before dispatch, so the gateway calls
    no provider and answers 504 `deadline_exceeded` at once instead of after the door's timeout."""
    headers = {"Authorization": f"Bearer {door.key}", "x-stainless-read-timeout": "0.001"}
    began = time.monotonic()
    answer = httpx.post(door.url + "/v1/chat/completions", headers=headers, timeout=60,
                        json={"model": MODEL, "messages": USER})
    assert answer.status_code == 504 and time.monotonic() - began < 30
    error = answer.json()["error"]
    assert error["code"] == "deadline_exceeded" and "no provider was called" in error["message"]


def _answers_to(settings: Settings, request_id: str, quiet_s: float = 4.0,
                timeout_s: float = 30) -> list[Any]:
    """Every committed answer to `request_id` on `responses`, read until `quiet_s` passed after the
    first (so a second one would be seen)."""
    topic = physical_name("responses", settings.kafka.topic_prefix)
    codec = make_codec(topic, "Response", None)
    consumer = Consumer(consumer_config(settings, group_id=f"a-{uuid.uuid4().hex[:6]}", role="admin"))
    consumer.assign([TopicPartition(topic, p, 0)
                     for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions])
    found: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for m in consumer.consume(500, timeout=0.5):
            if m.error() is None and (answer := codec.decode(m.value() or b""))["request_id"] == request_id:
                if not found:
                    deadline = min(deadline, time.monotonic() + quiet_s)
                found.append(answer)
    consumer.close()
    return found


def test_a_resend_whose_deadline_passed_while_its_first_copy_is_answered_gets_one_answer(door: Door) -> None:
    """The request path stops a request past its deadline before its dedup claim, so a resend of one
    still at its provider reaches the gateway's rejection path: it must not answer the id a second time
    (`deadline_exceeded` next to the first copy's `ok`)."""
    with GatewayClient(door.settings, api_key=door.key) as client:  # the gateway is reading: it is timed
        assert client.chat(team="search", project="ranker", model=MODEL, messages=USER)["status"] == "ok"
    door.simulator.set_profile("gpt-4o", median_ms=2500, p99_ms=2600)
    try:
        request = build_request(team="search", project="ranker", model="gpt-4o", api_key=door.key,
                                messages=USER, deadline_at_ms=int(time.time() * 1000) + 1500)
        with RequestProducer(door.settings) as producer:
            producer.send(request)
            producer.flush(10)
            time.sleep(2.0)  # the deadline has passed; the first copy is still at the provider
            producer.send(request)
            producer.flush(10)
        answers = _answers_to(door.settings, request.request_id)
        assert [(a["status"], a["reason_code"]) for a in answers] == [("ok", None)], \
            [a["message"] for a in answers]
    finally:
        httpx.delete(f"{door.simulator.url}/admin/profiles/gpt-4o", timeout=5)


# -- Kafka request-reply ----------------------------------------------------------------------------------
def test_gateway_client_request_reply(door: Door) -> None:
    with GatewayClient(door.settings, api_key=door.key) as client:
        response = client.chat(team="search", project="ranker", model=MODEL, messages=USER)
        assert response["status"] == "ok" and response["content"]
        with pytest.raises(RequestRejectedError) as err:
            client.chat(team="search", project="ranker", model="no-such-model", messages=USER)
        assert err.value.reason_code == "unknown_model"
        with pytest.raises(ReplyTimeoutError):
            client.chat(team="search", project="ranker", model=MODEL, messages=USER, timeout_s=0.001)


def test_async_gateway_client_many_at_once(door: Door) -> None:
    async def many() -> list[dict[str, object]]:
        async with AsyncGatewayClient(door.settings, api_key=door.key) as client:
            return await asyncio.gather(*(client.chat(team="search", project="ranker", model=MODEL,
                                                      messages=[{"role": "user", "content": f"q {i}"}])
                                          for i in range(20)))
    answers = asyncio.run(many())
    assert len({a["request_id"] for a in answers}) == 20 and all(a["status"] == "ok" for a in answers)


def test_answers_come_once_on_the_reply_partition(door: Door, tmp_path: Path) -> None:
    """N front doors do not each read all answers: every answer lands in the partition its caller named."""
    with GatewayClient(door.settings, api_key=door.key, reply_partition=3) as client:
        ids = [client.chat(team="search", project="ranker", model=MODEL, messages=USER)["request_id"]
               for _ in range(5)]
    topic = physical_name("replies", door.settings.kafka.topic_prefix)
    consumer = Consumer(consumer_config(door.settings, group_id=f"r-{uuid.uuid4().hex[:6]}", role="admin"))
    seen: dict[str, list[int]] = {}
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=0.5):
                if msg.error() is None and msg.key() and msg.key().decode() in ids:
                    seen.setdefault(msg.key().decode(), []).append(msg.partition())
    finally:
        consumer.close()
    assert seen == {i: [3] for i in ids}
