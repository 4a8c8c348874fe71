"""A dispatch test rig: a real simulator process, a real dispatcher process, the real broker."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer

from apps.demo.processes import write_config
from gateway_consumer.simulator import SimulatorProcess
from schemas import make_codec
from streamgate.config import ProviderSettings, Settings
from streamgate.kafka.clients import consumer_config, producer_config


def routed(targets: list[dict[str, Any]], content: str = "hello there", *, team: str = "search",
           request_id: str | None = None, **params: Any) -> dict[str, Any]:
    now = int(time.time() * 1000)
    rid = request_id or str(uuid.uuid4())
    return {
        "request_id": rid, "trace_id": rid, "session_id": None, "team": team, "project": "web",
        "api_key_id": "key-hash-1", "user_id": None, "requested_model": targets[0]["model"],
        "messages": [{"role": "user", "content": content, "name": None}],
        "params": {"max_tokens": None, "temperature": None, "top_p": None, "stream": False,
                   "response_format": None, "stop": []} | params,
        "tags": {}, "metadata": {}, "region": None,
        "targets": [{"provider": "sim", "region": "us", "timeout_ms": 5000, "weight": None} | t
                    for t in targets],
        "strategy": "single", "routing_config_version": "test", "policy_version": "test",
        "guardrail_actions": [], "created_at": now, "routed_at": now,
    }


#: Breaker open time in the rig: long enough that a loaded machine's round trips (over a second each
#: seen here) still observe the open state before the breaker half-opens.
OPEN_S = 15.0


class DispatchRig:
    def __init__(self, settings: Settings, topics: dict[str, str], workdir: Path, sim_port: int) -> None:
        self.topics, self.workdir = topics, workdir
        url = f"http://127.0.0.1:{sim_port}/v1"
        providers = {"sim": ProviderSettings(kind="openai", base_url=url),
                     "sim_anthropic": ProviderSettings(kind="anthropic", base_url=url),
                     "sim_narrow": ProviderSettings(kind="openai", base_url=url, max_concurrency=1)}
        dispatch = settings.dispatch.model_copy(update={"breaker": settings.dispatch.breaker.model_copy(
            update={"min_calls": 4, "window": 8, "open_s": OPEN_S})})
        self.settings = settings.model_copy(update={"providers": providers, "dispatch": dispatch})
        self.config = write_config(self.settings, workdir / "dispatch.yaml")
        self.simulator = SimulatorProcess(sim_port, workdir / "simulator.log", seed=7)
        self.proc: subprocess.Popen[bytes] | None = None
        self.codec = make_codec(topics["requests.routed"], "RoutedRequest")
        self.producer = Producer(producer_config(self.settings, client_id="rig", role="admin"))
        self.reader = Consumer(consumer_config(self.settings, group_id=f"rig-{uuid.uuid4().hex[:6]}",
                                               role="admin"))
        self.reader.subscribe([topics["responses"], topics["telemetry"], topics["guardrail.verdicts"]])
        self.decoders = {topics["responses"]: make_codec(topics["responses"], "Response"),
                         topics["telemetry"]: make_codec(topics["telemetry"], "Telemetry"),
                         topics["guardrail.verdicts"]: make_codec(topics["guardrail.verdicts"],
                                                                  "GuardrailVerdict")}
        self.responses: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.telemetry: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.verdicts: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def start_dispatcher(self) -> None:
        exe = Path(sys.executable).parent / "streamgate"
        with open(self.workdir / "dispatcher.log", "ab") as log:
            self.proc = subprocess.Popen([str(exe), "dispatch", "worker", "--config", str(self.config)],
                                         stdout=log, stderr=subprocess.STDOUT)

    def send(self, events: list[dict[str, Any]]) -> None:
        for e in events:
            value = self.codec.encode(e)
            self.producer.produce(self.topics["requests.routed"], value, e["request_id"].encode())
        self.producer.flush(30)

    def collect(self, request_ids: set[str], timeout_s: float = 60, linger_s: float = 1.0) -> None:
        """Read outcomes until every id has a response, then a little longer (to catch duplicates)."""
        deadline, done_at = time.monotonic() + timeout_s, None
        while time.monotonic() < deadline:
            for m in self.reader.consume(1000, timeout=0.3):
                if m.error() is not None:
                    continue
                event = self.decoders[m.topic() or ""].decode(m.value() or b"")
                target = (self.responses if m.topic() == self.topics["responses"] else
                          self.telemetry if m.topic() == self.topics["telemetry"] else self.verdicts)
                target[event["request_id"]].append(event)
            if done_at is None and request_ids <= set(self.responses):
                done_at = time.monotonic()
            if done_at is not None and time.monotonic() - done_at > linger_s:
                return

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.reader.close()
        self.simulator.stop()
