"""What SASL/SCRAM and ACLs cost: `bench request-path` and `bench dispatch` throughput, secured vs not.

Two private brokers run side by side for the whole benchmark, one with `kafka.security.protocol:
SASL_PLAINTEXT` (SCRAM-SHA-512 and the ACL authorizer, the default) and one with PLAINTEXT (no
authentication, no authorizer); runs alternate between them (and swap order every repeat) so a busy
moment of this shared machine lands on both alike. Each run is the same measurement as the named
benchmark's headline figure: one request-path worker process from `requests` to its outcomes
(bench/request_path.py `pipeline_rate`), and one in-process dispatcher draining `requests.routed`
against the 0 ms simulator (bench/dispatch.py `_drain`). The figure is the ratio secured / plaintext.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import uuid
from pathlib import Path
from typing import Any

from bench.dispatch import _drain, _routed
from bench.dispatch import _fill as fill_routed
from bench.harness import write_result
from bench.request_path import pipeline_rate
from gateway_consumer.simulator import SimulatorProcess
from streamgate.config import ProviderSettings, Settings, load_settings
from streamgate.kafka.launcher import LocalKafka
from streamgate.kafka.topics import apply_spec

REQUESTS = 10_000  # request-path events per run
ROUTED = 10_000  # dispatched requests per run
PROTOCOLS = ("SASL_PLAINTEXT", "PLAINTEXT")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _broker_settings(protocol: str, state_dir: Path, sim_port: int) -> Settings:
    base = load_settings()
    local = base.kafka.local.model_copy(update={"port": _free_port(), "controller_port": _free_port(),
                                                "heap": "768m"})
    # absolute: pipeline_rate moves the state directory of the workers it starts, not the broker's
    security = base.kafka.security.model_copy(update={
        "protocol": protocol, "credentials_file": state_dir / "kafka-credentials.json",
        "ca_file": state_dir / "kafka-tls" / "ca.pem"})
    kafka = base.kafka.model_copy(update={"bootstrap_servers": None, "local": local, "security": security})
    providers = {"sim": ProviderSettings(base_url=f"http://127.0.0.1:{sim_port}/v1", max_concurrency=512)}
    cache = base.dispatch.cache.model_copy(update={"enabled": False})  # every request reaches the provider
    dispatch = base.dispatch.model_copy(update={"cache": cache, "max_in_flight": 4096})
    return base.model_copy(update={"state_dir": state_dir, "kafka": kafka, "providers": providers,
                                   "dispatch": dispatch})


def _deployment(broker: Settings) -> Settings:
    """A fresh topic prefix on `broker` with the whole spec (topics, users, ACLs) applied."""
    kafka = broker.kafka.model_copy(update={"topic_prefix": f"sec{uuid.uuid4().hex[:6]}."})
    settings = broker.model_copy(update={"kafka": kafka})
    apply_spec(settings)
    return settings


def _dispatch_rate(broker: Settings) -> float:
    settings = _deployment(broker)
    fill_routed(settings, [_routed("zero", i) for i in range(ROUTED)])
    elapsed, _ = asyncio.run(_drain(settings, ROUTED, "sec"))
    return ROUTED / elapsed


def main(repeats: int = 3) -> dict[str, Any]:
    runs: dict[str, dict[str, list[float]]] = {p: {"request_path": [], "dispatch": []} for p in PROTOCOLS}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sim_port = _free_port()  # not bench dispatch's fixed port: another run may hold it
        brokers = {p: _broker_settings(p, root / p.lower(), sim_port) for p in PROTOCOLS}
        launchers = [LocalKafka(s) for s in brokers.values()]
        sim = SimulatorProcess(sim_port, root / "simulator.log", seed=1)
        try:
            for launcher in launchers:
                launcher.up()
            sim.start()
            sim.set_profile("zero", median_ms=0, p99_ms=0)
            for r in range(repeats):
                for protocol in (PROTOCOLS if r % 2 == 0 else PROTOCOLS[::-1]):
                    workdir = root / f"run-{r}-{protocol.lower()}"
                    rate, _ = pipeline_rate(_deployment(brokers[protocol]), workdir)
                    runs[protocol]["request_path"].append(rate)
                    runs[protocol]["dispatch"].append(_dispatch_rate(brokers[protocol]))
                    print(f"repeat {r} {protocol}: request path {rate:,.0f} events/s, "
                          f"dispatch {runs[protocol]['dispatch'][-1]:,.0f} requests/s")
        finally:
            sim.stop()
            for launcher in launchers:
                launcher.down()
    med = {p: {k: statistics.median(v) for k, v in runs[p].items()} for p in PROTOCOLS}
    secured, plain = med["SASL_PLAINTEXT"], med["PLAINTEXT"]
    rp_ratio = secured["request_path"] / plain["request_path"]
    d_ratio = secured["dispatch"] / plain["dispatch"]
    result = {"repeats": repeats, "request_path_events": REQUESTS, "dispatch_requests": ROUTED,
              "request_path_events_per_s": {"sasl_scram_acls": secured["request_path"],
                                            "plaintext": plain["request_path"]},
              "dispatch_requests_per_s": {"sasl_scram_acls": secured["dispatch"],
                                          "plaintext": plain["dispatch"]},
              "request_path_secured_over_plaintext": rp_ratio, "dispatch_secured_over_plaintext": d_ratio,
              "runs": runs}
    table = [("request path, 1 worker: SASL/SCRAM + ACLs", f"{secured['request_path']:,.0f} events/s"),
             ("request path, 1 worker: PLAINTEXT, no authorizer (baseline)",
              f"{plain['request_path']:,.0f} events/s"),
             ("request path secured / plaintext", f"{rp_ratio:.2f}"),
             ("dispatch, 0 ms simulator: SASL/SCRAM + ACLs", f"{secured['dispatch']:,.0f} requests/s"),
             ("dispatch, 0 ms simulator: PLAINTEXT (baseline)", f"{plain['dispatch']:,.0f} requests/s"),
             ("dispatch secured / plaintext", f"{d_ratio:.2f}"),
             ("runs (median shown; alternating brokers)", f"{repeats} of each")]
    write_result("security", result, table)
    for k, v in table:
        print(f"{k:<62} {v}")
    return result
