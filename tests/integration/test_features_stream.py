"""Streams -> Feast -> the gateway, on the real broker: the push worker makes aggregates readable online
within seconds (exact totals, freshness lag measured), and latency-aware routing reading Feast moves
traffic off a provider the simulator degrades."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from apps.demo.processes import write_config
from features.push import FeaturePusher
from features.serving import FeastHealth
from schemas import make_codec
from shared.policy.config import Route, Target, load_policy
from shared.traffic.telemetry import telemetry_events
from streamgate.config import ProviderSettings, Settings
from streamgate.kafka.clients import producer_config
from streams.route.router import RouteDecision, route_request
from tests.conftest import free_port
from tests.helpers.aggregation import AggregatorProcess
from tests.helpers.dispatch import DispatchRig, routed

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
SWITCH_WITHIN_S = 30.0


class Loop:
    """Simulator, dispatcher and aggregator processes, and the push worker in a thread."""

    def __init__(self, settings: Settings, topics: dict[str, str], workdir: Path) -> None:
        features = settings.features.model_copy(update={"push_interval_s": 0.25, "read_cache_s": 0.25})
        settings = settings.model_copy(update={"features": features})
        self.rig = DispatchRig(settings, topics, workdir, free_port())
        url = self.rig.simulator.url + "/v1"
        providers = {n: ProviderSettings(kind="openai", base_url=url) for n in ("openai", "simulator")}
        self.settings = self.rig.settings = self.rig.settings.model_copy(update={"providers": providers})
        self.rig.config = write_config(self.settings, workdir / "dispatch.yaml")
        self.aggregator = AggregatorProcess(self.settings, workdir)
        self.pusher: FeaturePusher | None = None

    def start(self) -> Loop:
        self.rig.simulator.start()
        self.rig.start_dispatcher()
        self.aggregator.start()
        self.pusher = FeaturePusher(self.settings).start()
        threading.Thread(target=self.pusher.run, daemon=True).start()
        return self

    def close(self) -> None:
        if self.pusher:
            self.pusher.close()
        self.aggregator.stop()
        self.rig.close()


@pytest.fixture
def loop(settings: Settings, topics: dict[str, str], tmp_path: Path) -> Iterator[Loop]:
    running = Loop(settings, topics, tmp_path).start()
    try:
        yield running
    finally:
        running.close()


def test_pushed_aggregates_are_online_within_seconds(loop: Loop, topics: dict[str, str]) -> None:
    assert loop.pusher is not None
    now = int(time.time() * 1000)
    events = list(telemetry_events(1_000, start_ms=now - 1_000, span_ms=1_000, late_share=0))
    codec = make_codec(topics["telemetry"], "Telemetry")
    producer = Producer(producer_config(loop.settings, client_id="t", role="admin"))
    for e in events:
        producer.produce(topics["telemetry"], codec.encode(e), e["request_id"].encode())
    assert producer.flush(30) == 0
    sent = time.monotonic()
    team, key = events[0]["team"], events[0]["api_key_id"]
    want_team = sum(e["cost_nanousd"] for e in events if e["team"] == team)
    want_key = sum(e["cost_nanousd"] for e in events if e["api_key_id"] == key)
    store = loop.pusher.store

    def online() -> tuple[Any, Any]:
        t = store.get_online_features(["team_usage:spend_today_nanousd"], [{"team": team}]).to_dict()
        k = store.get_online_features(["key_usage:spend_today_nanousd"], [{"api_key_id": key}]).to_dict()
        return t["spend_today_nanousd"][0], k["spend_today_nanousd"][0]

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and online() != (want_team, want_key):
        time.sleep(0.05)
    assert online() == (want_team, want_key)
    lag_s = time.monotonic() - sent
    target = f"{events[0]['provider']}/{events[0]['model']}"
    health = store.get_online_features(["provider_health:latency_p95_ms", "provider_health:attempts_5m"],
                                       [{"target": target}]).to_dict()
    assert health["attempts_5m"][0] == sum(1 for e in events
                                           if f"{e['provider']}/{e['model']}" == target)
    assert health["latency_p95_ms"][0] > 0
    print(f"\nfreshness: all 1,000 events readable online {lag_s:.2f} s after the last was produced")


def _fast_route(policy: Any) -> Any:
    fast = Route(strategy="latency", max_p95_ms=1000, targets=[
        Target(provider="simulator", model="sim-small"), Target(provider="openai", model="gpt-4o-mini")])
    routing = policy.routing.model_copy(update={"routes": {**policy.routing.routes, "fast": fast}})
    return policy.model_copy(update={"routing": routing})


def test_latency_routing_moves_off_a_degraded_provider(loop: Loop) -> None:
    assert loop.pusher is not None
    policy, rng = _fast_route(load_policy()), random.Random(3)
    health = FeastHealth(loop.pusher.store, loop.settings.features.read_cache_s)

    def step() -> str:
        decision = route_request({"model": "fast", "team": "research", "region": None}, policy, health, rng)
        assert isinstance(decision, RouteDecision)
        targets = [t.model_dump() for t in decision.targets]
        # distinct prompts: cache hits would count as ~0 ms calls in the provider's latency
        event = routed(targets, f"question {uuid.uuid4()}", team="research") | {"strategy": "latency"}
        loop.rig.send([event])
        time.sleep(0.1)
        return f"{targets[0]['provider']}/{targets[0]['model']}"

    deadline = time.monotonic() + 60  # healthy: sim-small leads, and Feast has its latency
    while time.monotonic() < deadline and health.get("simulator", "sim-small") is None:
        assert step() == "simulator/sim-small"
    assert health.get("simulator", "sim-small") is not None
    for _ in range(20):
        assert step() == "simulator/sim-small"

    loop.rig.simulator.set_profile("sim-small", median_ms=2500, p99_ms=4000)
    degraded_at, picks = time.monotonic(), []
    while time.monotonic() - degraded_at < SWITCH_WITHIN_S + 10:
        picks.append((time.monotonic() - degraded_at, step()))
        if len(picks) >= 10 and all(p == "openai/gpt-4o-mini" for _, p in picks[-10:]):
            break
    moved = next(t for t, p in picks if p == "openai/gpt-4o-mini")
    stats = health.get("simulator", "sim-small")
    print(f"\nrouting moved off sim-small {moved:.1f} s after it degraded (p95 now {stats})")
    assert all(p == "openai/gpt-4o-mini" for _, p in picks[-10:])
    assert moved < SWITCH_WITHIN_S
