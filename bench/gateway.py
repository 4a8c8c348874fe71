"""Gateway: total client latency through each gateway path against the same 0 ms provider simulator.

Paths (issue 15 item 8), each a way for a service to get a chat completion from the same simulator:
- `direct`: HTTP straight to the simulator's `/v1/chat/completions`, the baseline of the same run;
- `streamgate_http`: streamgate's OpenAI-compatible front door (`streamgate serve`) over the whole
  request path and dispatcher (a stack this benchmark starts, or a running one given by its URL);
- `streamgate_kafka`: request-reply over Kafka (`AsyncGatewayClient`) through the same stages;
- `litellm`: LiteLLM proxy from PyPI, its documented defaults, one worker;
- `portkey`: Portkey's open-source gateway from npm, its defaults.
LiteLLM and Portkey are installed by this benchmark (bench/peers.py) into ~/.cache/streamgate/peers.
A path that cannot run here (not configured, registry unreachable) is skipped with its reason in the JSON.

Load (bench/loadgen.py): open loop, ~1 KB prompts, each rate for a fixed time in a load-generator
process of its own; latency from each request's scheduled start to its answer, failures counted. Per
path, rates step up (10, 25, 50, 100, ... requests/s) until one is not sustained (p99 >= 1 s, or under
90% of the offered rate answered); the highest sustained rate is `<path>_max_per_s` (after one bisection
step between the last pass and the first failure). The fixed rates (50 and 500/s) are rungs of that
ladder run for the longer fixed duration; one the search did not reach runs at the end, so an overload
never precedes another measurement.

Adding a path: write a context manager `(ctx: Context) -> Iterator[GatewayPath]` that starts what the
path needs, yields an `HttpPath` (name, base URL, headers, model) or an `AdapterPath` (a `ChatAdapter`
class, see bench/kafka_adapter.py), stops it on exit and raises `UnavailableError` (bench/peers.py) when
the path cannot run; then add it to `PATHS`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import ZERO_LATENCY, write_result
from bench.loadgen import AdapterPath, GatewayPath, HttpPath, RunSpec, RunStats, run_in_process, search_max
from bench.peers import (
    LITELLM_SPEC,
    PEERS_DIR,
    PORTKEY_SPEC,
    UnavailableError,
    install_litellm,
    install_portkey,
    litellm_process,
    portkey_process,
)
from gateway_consumer.simulator import SimulatorProcess

DEFAULT_PATHS = ("direct", "streamgate_http", "streamgate_kafka", "litellm", "portkey")
ENV_HTTP_URL, ENV_KEY, ENV_KAFKA_CONFIG = "STREAMGATE_BENCH_HTTP_URL", "STREAMGATE_BENCH_KEY", \
    "STREAMGATE_BENCH_KAFKA_CONFIG"


@dataclass(frozen=True)
class Options:
    paths: tuple[str, ...]
    rates: tuple[float, ...]
    duration_s: float
    search_rates: tuple[float, ...]
    search_duration_s: float
    refine_steps: int
    p99_limit_ms: float
    timeout_s: float
    prompt_chars: int
    model: str
    simulator: str | None
    peers_dir: Path
    streamgate_http_url: str | None
    streamgate_kafka_config: str | None
    team: str
    project: str
    cooldown_s: float
    write: bool


@dataclass(frozen=True)
class Context:
    """What a path's setup gets: the simulator every path ends at, a scratch directory, the options."""

    simulator_v1: str
    workdir: Path
    options: Options


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# ------------------------------------------------------------------------------------------ paths


@contextmanager
def direct(ctx: Context) -> Iterator[GatewayPath]:
    yield HttpPath("direct", ctx.simulator_v1, {}, ctx.options.model)


@contextmanager
def litellm(ctx: Context) -> Iterator[GatewayPath]:
    exe = install_litellm(ctx.options.peers_dir)
    port = free_port()
    proc, key = litellm_process(exe, port, ctx.simulator_v1, ctx.options.model, ctx.workdir)
    proc.start(timeout_s=600)  # its imports alone took over 3 minutes on this machine under load
    try:
        yield HttpPath("litellm", f"http://127.0.0.1:{port}/v1", {"Authorization": f"Bearer {key}"},
                       ctx.options.model)
    finally:
        proc.stop()


@contextmanager
def portkey(ctx: Context) -> Iterator[GatewayPath]:
    entry = install_portkey(ctx.options.peers_dir)
    port = free_port()
    proc = portkey_process(entry, port, ctx.workdir).start()
    try:
        yield HttpPath("portkey", f"http://127.0.0.1:{port}/v1",
                       {"x-portkey-provider": "openai", "x-portkey-custom-host": ctx.simulator_v1,
                        "Authorization": "Bearer sk-simulator"}, ctx.options.model)
    finally:
        proc.stop()


@contextmanager
def _streamgate_stack(ctx: Context, name: str) -> Iterator[tuple[str, str, str]]:
    """streamgate as a service would run it: the request path, the dispatcher and the front door as their
    own processes on the configured broker (the local one, started if it is not running: `streamgate kafka
    up`), under a topic prefix of this run (logs under <state_dir>/logs), with the
    benchmark's simulator as every provider and the answer cache off (as the peers have none). Yields
    (front door base URL, an API key, the stack's config path)."""
    import uuid

    from rich.console import Console

    from apps.demo.frontdoor_traffic import wait_until_up
    from apps.demo.processes import Components, use_simulator_port
    from apps.stack import request_stages, start_infrastructure
    from bench.harness import drop_at_exit
    from shared.identity.admin import KeyAdmin
    from streamgate.config import load_settings

    base = load_settings()
    port = int(ctx.simulator_v1.removesuffix("/v1").rsplit(":", 1)[1])
    cache = base.dispatch.cache.model_copy(update={"enabled": False})
    settings = use_simulator_port(base, port).model_copy(update={
        "kafka": base.kafka.model_copy(update={"topic_prefix": f"bench{uuid.uuid4().hex[:6]}."}),
        "dispatch": base.dispatch.model_copy(update={"cache": cache}),
        "metrics": base.metrics.model_copy(update={"enabled": False}),
        "frontdoor": base.frontdoor.model_copy(update={"port": free_port()})})
    start_infrastructure(settings, Console(stderr=True))
    drop_at_exit(settings)
    _, key = KeyAdmin(settings, actor="bench").create(ctx.options.team, ctx.options.project)
    with Components(settings, name=name) as components:
        for stage, args in request_stages(settings):
            components.start(stage, *args)
        components.start("frontdoor", "serve")
        url = f"http://127.0.0.1:{settings.frontdoor.port}"
        wait_until_up(url, timeout_s=180)
        time.sleep(5)  # the workers have joined their groups
        yield url + "/v1", key, str(components.config)


@contextmanager
def streamgate_http(ctx: Context) -> Iterator[GatewayPath]:
    """The front door (`streamgate serve`), OpenAI-compatible HTTP. With `--streamgate-http-url` (and the
    key in $STREAMGATE_BENCH_KEY) a running one; else a stack started here."""
    url, key = ctx.options.streamgate_http_url, os.environ.get(ENV_KEY)
    if url and key:
        yield HttpPath("streamgate_http", url, {"Authorization": f"Bearer {key}"}, ctx.options.model)
        return
    with _streamgate_stack(ctx, "streamgate_http") as (url, key, _):
        yield HttpPath("streamgate_http", url, {"Authorization": f"Bearer {key}"}, ctx.options.model)


@contextmanager
def streamgate_kafka(ctx: Context) -> Iterator[GatewayPath]:
    """Request-reply over Kafka (`AsyncGatewayClient`): with `--streamgate-kafka-config` (and the key in
    $STREAMGATE_BENCH_KEY) through a running stack; else a stack started here."""
    o = ctx.options
    config, key = o.streamgate_kafka_config, os.environ.get(ENV_KEY)

    def path(config: str, key: str) -> AdapterPath:
        return AdapterPath("streamgate_kafka", "bench.kafka_adapter:GatewayClientAdapter",
                           {"config": config, "api_key": key, "team": o.team, "project": o.project,
                            "timeout_s": o.timeout_s}, o.model)

    if config and key:
        yield path(config, key)
        return
    with _streamgate_stack(ctx, "streamgate_kafka") as (_, key, config):
        yield path(config, key)


PathSetup = Callable[[Context], AbstractContextManager[GatewayPath]]
PATHS: dict[str, PathSetup] = {"direct": direct, "streamgate_http": streamgate_http,
                               "streamgate_kafka": streamgate_kafka, "litellm": litellm, "portkey": portkey}


# ---------------------------------------------------------------------------------------- running


def _rate_key(rate: float) -> str:
    return f"{rate:g}"


def _measure(path: GatewayPath, rate: float, duration_s: float, o: Options) -> RunStats:
    spec = RunSpec(path, rate, duration_s, timeout_s=o.timeout_s, prompt_chars=o.prompt_chars)
    stats = run_in_process(spec)
    errors = f", {stats.error_count} errors {stats.errors}" if stats.error_count else ""
    print(f"  {path.name:<17} {rate:>6g}/s for {duration_s:g} s: p50 {stats.p50_ms:8.2f} ms  p99 "
          f"{stats.p99_ms:8.2f} ms  achieved {stats.achieved_per_s:7.1f}/s  (send lag p99 "
          f"{stats.send_lag_p99_ms:.1f} ms){errors}", flush=True)
    # an overloaded path may still be working off its backlog: let it drain before the next run
    time.sleep(o.cooldown_s if stats.sustained(o.p99_limit_ms) else 3 * o.cooldown_s)
    return stats


def run_path(path: GatewayPath, o: Options) -> tuple[dict[float, RunStats], float, list[RunStats]]:
    """The search for the highest sustained rate, ascending, where a rung that is also a fixed rate runs
    for the fixed duration and counts as that rate's figures; then the fixed rates the search did not
    reach. Overloads come last, so no measured run follows one still draining."""
    fixed: dict[float, RunStats] = {}

    def measure(rate: float) -> RunStats:
        if rate in fixed:
            return fixed[rate]
        stats = _measure(path, rate, o.duration_s if rate in o.rates else o.search_duration_s, o)
        if rate in o.rates:
            fixed[rate] = stats
        return stats

    best, trail = search_max(measure, list(o.search_rates), o.p99_limit_ms, refine_steps=o.refine_steps)
    print(f"  {path.name}: highest sustained rate {best:g}/s", flush=True)
    for rate in o.rates:
        measure(rate)
    return {rate: fixed[rate] for rate in o.rates}, best, trail


@contextmanager
def _simulator(o: Options, workdir: Path) -> Iterator[str]:
    """The simulator every path ends at (started here unless `--simulator` names a running one), with
    the benchmark's model answering at once and never failing; yields its /v1 base URL."""
    if o.simulator:
        url = o.simulator.rstrip("/").removesuffix("/v1")
        sim = SimulatorProcess(int(url.rsplit(":", 1)[1]), workdir / "simulator.log")
    else:
        # a loaded machine took over 30 s (the default) to import and bind
        sim = SimulatorProcess(free_port(), workdir / "simulator.log", seed=1).start(timeout_s=180)
    try:
        sim.set_profile(o.model, **ZERO_LATENCY)
        yield sim.url + "/v1"
    finally:
        if o.simulator:
            sim.reset_profile(o.model)
        else:
            sim.stop()


def measure_all(o: Options) -> dict[str, Any]:
    result: dict[str, Any] = {"skipped": {}, "runs": [], "paths_measured": []}
    workdir = o.peers_dir / "last-run"  # configs and logs of this run's processes, kept for a look after
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    with _simulator(o, workdir) as sim_v1:
        ctx = Context(sim_v1, workdir, o)
        for name in o.paths:
            print(f"== path {name}", flush=True)
            try:
                with PATHS[name](ctx) as path:
                    fixed, best, trail = run_path(path, o)
            except UnavailableError as exc:
                print(f"  skipped: {exc}", flush=True)
                result["skipped"][name] = str(exc)
                continue
            result["paths_measured"].append(name)
            for rate, stats in fixed.items():
                k = f"{name}_{_rate_key(rate)}"
                result |= {f"{k}_p50_ms": stats.p50_ms, f"{k}_p99_ms": stats.p99_ms,
                           f"{k}_achieved_per_s": stats.achieved_per_s, f"{k}_errors": stats.error_count,
                           f"{k}_timeouts": stats.errors.get("timeout", 0),
                           f"{k}_sustained": stats.sustained(o.p99_limit_ms),
                           f"{k}_sent": stats.sent, f"{k}_send_lag_p99_ms": stats.send_lag_p99_ms}
            result[f"{name}_max_per_s"] = best
            result[f"{name}_max_capped"] = best >= max(o.search_rates)
            result["runs"] += [{"phase": "fixed", **s.as_dict()} for s in fixed.values()]
            result["runs"] += [{"phase": "search", **s.as_dict()} for s in trail if s not in fixed.values()]
    _ratios(result, o)
    return result


def _ratios(result: dict[str, Any], o: Options) -> None:
    """Each path's p50/p99 over direct's at the same rate, same run; only where direct sustained that
    rate (over a baseline that was itself overloaded, a ratio says nothing)."""
    for name in result["paths_measured"]:
        for rate in o.rates:
            k, base = f"{name}_{_rate_key(rate)}", f"direct_{_rate_key(rate)}"
            if not result.get(f"{base}_sustained"):
                continue
            for q in ("p50", "p99"):
                if result[f"{base}_{q}_ms"] > 0:
                    result[f"{k}_{q}_vs_direct"] = result[f"{k}_{q}_ms"] / result[f"{base}_{q}_ms"]


def table(result: dict[str, Any], o: Options) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for name in result["paths_measured"]:
        for rate in o.rates:
            k = f"{name}_{_rate_key(rate)}"
            ratio = (f" (x{result[f'{k}_p50_vs_direct']:.1f} / x{result[f'{k}_p99_vs_direct']:.1f} direct)"
                     if name != "direct" and f"{k}_p50_vs_direct" in result else "")
            errors = result[f"{k}_errors"]
            if not result.get(f"{k}_sustained", True):
                ratio += " - overloaded"
            rows.append((f"{name} @ {rate:g}/s: p50 / p99, achieved, errors (generator lag p99)",
                         f"{result[f'{k}_p50_ms']:,.1f} / {result[f'{k}_p99_ms']:,.1f} ms{ratio}; "
                         f"{result[f'{k}_achieved_per_s']:,.0f}/s; {errors} of {result[f'{k}_sent']:,} "
                         f"({result[f'{k}_send_lag_p99_ms']:,.1f} ms)"))
        capped = " (top of the ladder: limit not reached)" if result[f"{name}_max_capped"] else ""
        rows.append((f"{name}: highest rate with p99 < {o.p99_limit_ms:g} ms",
                     f"{result[f'{name}_max_per_s']:,.0f}/s{capped}"))
    rows += [(f"{name}: skipped", reason) for name, reason in result["skipped"].items()]
    if "load_average_before" in result:
        rows.append(("machine load average (1 min) before / after",
                     f"{result['load_average_before'][0]:.1f} / {result['load_average_after'][0]:.1f} "
                     f"on {os.cpu_count()} cores"))
    rows.append(("load", f"open loop, {o.prompt_chars}-char prompts, {o.duration_s:g} s per fixed rate, "
                         f"{o.search_duration_s:g} s per search step; failures rank as the {o.timeout_s:g} s "
                         "timeout"))
    return rows


def _versions() -> dict[str, str]:
    node = shutil.which("node")
    node_version = "absent"
    if node:
        node_version = subprocess.run([node, "--version"], capture_output=True, text=True,
                                      check=False).stdout.strip()
    return {"litellm": LITELLM_SPEC, "portkey": PORTKEY_SPEC, "node": node_version}


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def parse(argv: list[str]) -> Options:
    p = argparse.ArgumentParser(prog="streamgate bench gateway", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: 2 s per rate, a short ladder, results "
                   "printed, nothing written")
    p.add_argument("--paths", default=",".join(DEFAULT_PATHS), help="comma-separated paths to measure")
    p.add_argument("--rates", default="50,500", help="fixed rates (requests/s)")
    p.add_argument("--duration", type=float, default=15.0, help="seconds per fixed rate")
    p.add_argument("--search-rates", default="10,25,50,100,200,350,500,750,1000,1500,2000,3000",
                   help="the ladder of the max-rate search")
    p.add_argument("--search-duration", type=float, default=5.0, help="seconds per search step")
    p.add_argument("--refine-steps", type=int, default=1, help="bisection steps after the first failed rung")
    p.add_argument("--p99-limit-ms", type=float, default=1000.0)
    p.add_argument("--timeout", type=float, default=10.0, help="per-request timeout (s)")
    p.add_argument("--prompt-chars", type=int, default=1024)
    p.add_argument("--model", default="gpt-4o-mini", help="model name sent by every path (set to 0 ms, no "
                   "failures on the simulator; a routable name for the streamgate paths)")
    p.add_argument("--simulator", default=None, help="base URL of a running simulator to use instead of "
                   "starting one (e.g. the one of `streamgate serve --all`)")
    p.add_argument("--peers-dir", type=Path, default=PEERS_DIR)
    p.add_argument("--streamgate-http-url", default=os.environ.get(ENV_HTTP_URL),
                   help=f"front door base URL, e.g. http://127.0.0.1:8080/v1 (key in ${ENV_KEY})")
    p.add_argument("--streamgate-kafka-config", default=os.environ.get(ENV_KAFKA_CONFIG),
                   help=f"config YAML of a running stack for GatewayClient (key in ${ENV_KEY})")
    p.add_argument("--team", default="search")
    p.add_argument("--project", default="ranker")
    p.add_argument("--cooldown", type=float, default=1.0, help="pause between runs (s; x3 after an overload)")
    a = p.parse_args(argv)
    paths = tuple(x.strip() for x in a.paths.split(",") if x.strip())
    if unknown := [x for x in paths if x not in PATHS]:
        p.error(f"unknown path(s) {unknown}; known: {', '.join(PATHS)}")
    duration, search_duration, ladder = a.duration, a.search_duration, a.search_rates
    if a.quick:
        duration, search_duration, ladder = 2.0, 1.5, "25,50,200,500,1000"
    return Options(paths, _floats(a.rates), duration, _floats(ladder), search_duration, a.refine_steps,
                   a.p99_limit_ms, a.timeout, a.prompt_chars, a.model, a.simulator, a.peers_dir,
                   a.streamgate_http_url, a.streamgate_kafka_config, a.team, a.project, a.cooldown,
                   write=not a.quick)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    o = parse(list(argv or []))
    load_before = os.getloadavg()
    result = measure_all(o)
    # other work on the machine shows in every figure: the load averages say how much there was
    result["load_average_before"], result["load_average_after"] = list(load_before), list(os.getloadavg())
    result["settings"] = {"rates": list(o.rates), "duration_s": o.duration_s,
                          "search_rates": list(o.search_rates), "search_duration_s": o.search_duration_s,
                          "p99_limit_ms": o.p99_limit_ms, "timeout_s": o.timeout_s,
                          "prompt_chars": o.prompt_chars, "model": o.model, "peers": _versions()}
    rows = table(result, o)
    for k, v in rows:
        print(f"{k:<52} {v}")
    if o.write:
        print(f"-> {write_result('gateway', result, rows)}")
    return result


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
