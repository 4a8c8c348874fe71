"""Open-loop paced load against one gateway path, run in a process of its own, and its statistics.

Open loop: request i starts at t0 + i/rate whatever happened to the ones before it, and its latency is
counted from that scheduled start (not from when the generator got round to sending it), so a path that
falls behind shows its backlog in the figures instead of slowing the generator down (coordinated
omission). The generator's own lateness is reported apart (`send_lag_p99_ms`) so a generator that could
not keep up is visible.

The generator runs in a spawned process: measured from a thread of a busy process, GIL waits showed up
as the measured system's latency (bench/dispatch.py found this). Every request sent is in the
statistics: one that fails (error status, bad body, connection error, timeout) is counted in `errors` and
ranks as the timeout in the percentiles, so a failure can only make p50/p99 worse, never better.

A path is either an HTTP endpoint speaking OpenAI's `/chat/completions` (`HttpPath`: name, base URL,
headers, model) or anything else behind a small adapter class (`AdapterPath` naming a `ChatAdapter`
implementation by import path, built inside the generator process).
"""

from __future__ import annotations

import asyncio
import importlib
import math
import multiprocessing
import resource
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

MAX_CONNECTIONS = 2000  # beyond this, requests wait for a connection (the wait counts in their latency)


# --------------------------------------------------------------------------------------------- paths


@dataclass(frozen=True)
class HttpPath:
    """An OpenAI-compatible endpoint: POST `<base_url>/chat/completions` with `headers`."""

    name: str
    base_url: str
    headers: dict[str, str]
    model: str


@dataclass(frozen=True)
class AdapterPath:
    """A path that is not plain HTTP: `adapter` is "module:Class" of a `ChatAdapter`, built in the
    generator process as `Class(**options)` (so options must be picklable: strings, numbers, dicts)."""

    name: str
    adapter: str
    options: dict[str, Any]
    model: str


GatewayPath = HttpPath | AdapterPath


class FailedRequestError(Exception):
    """A request that got an answer, but not a valid completion; `kind` is its error class."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class ChatAdapter(Protocol):
    """One way of sending a chat request. `chat` returns when a valid answer is back and raises
    otherwise (`FailedRequestError(kind)` for a known error class, any exception for the rest)."""

    async def open(self) -> None: ...

    async def chat(self, model: str, prompt: str, max_tokens: int) -> None: ...

    async def close(self) -> None: ...


class HttpAdapter:
    """OpenAI `/chat/completions` over aiohttp, one pooled session."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.headers = {"Content-Type": "application/json", **headers}
        self.session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, limit_per_host=MAX_CONNECTIONS)
        self.session = aiohttp.ClientSession(connector=connector, headers=self.headers,
                                             timeout=aiohttp.ClientTimeout(total=None))

    async def chat(self, model: str, prompt: str, max_tokens: int) -> None:
        assert self.session is not None, "open() first"
        body = {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": prompt}]}
        try:
            async with self.session.post(self.url, json=body) as response:
                raw = await response.read()
                if response.status != 200:
                    raise FailedRequestError(f"http_{response.status}")
        except aiohttp.ClientError as exc:
            raise FailedRequestError("connection") from exc
        if not _is_completion(raw):
            raise FailedRequestError("bad_body")

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


def _is_completion(raw: bytes) -> bool:
    import json

    try:
        content = json.loads(raw)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return False
    return isinstance(content, str) and bool(content)


def build_adapter(path: GatewayPath) -> ChatAdapter:
    if isinstance(path, HttpPath):
        return HttpAdapter(path.base_url, path.headers)
    module, _, cls = path.adapter.partition(":")
    adapter: ChatAdapter = getattr(importlib.import_module(module), cls)(**path.options)
    return adapter


# ------------------------------------------------------------------------------------ pure parts


def schedule(rate: float, duration_s: float) -> list[float]:
    """Start offsets (s from t0) of an open-loop run: evenly spaced at `rate`/s for `duration_s`."""
    if rate <= 0 or duration_s <= 0:
        raise ValueError(f"rate and duration must be positive, got {rate}/s for {duration_s} s")
    return [i / rate for i in range(max(1, round(rate * duration_s)))]


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of an ascending list: the smallest value with at least
    q of the values at or below it."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 < q <= 1:
        raise ValueError(f"q must be in (0, 1], got {q}")
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def prompt(i: int, size: int = 1024) -> str:
    """A ~`size`-character prompt, different per request (no cache anywhere can answer it)."""
    head = f"Request {i}: summarise the following notes about stream processing in two sentences. "
    body = " ".join(f"note {i}.{k}: events flow from producers through the gateway to providers."
                    for k in range(size // 60 + 1))
    return (head + body)[:size]


@dataclass(frozen=True)
class Record:
    """One request: scheduled start, actual send, end (loop seconds), and its error kind (None: ok)."""

    scheduled: float
    sent: float
    done: float
    error: str | None


@dataclass
class RunStats:
    path: str
    rate: float
    duration_s: float
    sent: int
    ok: int
    errors: dict[str, int] = field(default_factory=dict)
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    ok_p50_ms: float = math.nan
    ok_p99_ms: float = math.nan
    achieved_per_s: float = 0.0
    send_lag_p99_ms: float = 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def sustained(self, p99_limit_ms: float, min_achieved_share: float = 0.9) -> bool:
        """p99 under the limit (failures rank as the timeout, so >1% failures fail it) and at least
        `min_achieved_share` of the offered rate answered."""
        return self.p99_ms < p99_limit_ms and self.achieved_per_s >= min_achieved_share * self.rate

    def as_dict(self) -> dict[str, Any]:
        """For the JSON: a percentile of no answers (NaN) becomes null."""
        def num(x: float) -> float | None:
            return None if math.isnan(x) else x

        return {"path": self.path, "rate": self.rate, "duration_s": self.duration_s, "sent": self.sent,
                "ok": self.ok, "errors": self.error_count, "error_kinds": dict(self.errors),
                "p50_ms": num(self.p50_ms), "p99_ms": num(self.p99_ms), "ok_p50_ms": num(self.ok_p50_ms),
                "ok_p99_ms": num(self.ok_p99_ms), "achieved_per_s": self.achieved_per_s,
                "send_lag_p99_ms": self.send_lag_p99_ms}


def summarize(path: str, rate: float, duration_s: float, records: list[Record], timeout_s: float) -> RunStats:
    """Statistics of one run. Latency runs from the scheduled start to the end; a failed request ranks
    as `timeout_s` (at least as bad as any success), so it is never left out of p50/p99."""
    stats = RunStats(path, rate, duration_s, sent=len(records), ok=0)
    if not records:
        return stats
    ok_ms = sorted((r.done - r.scheduled) * 1000 for r in records if r.error is None)
    failed = [r for r in records if r.error is not None]
    for r in failed:
        stats.errors[r.error or ""] = stats.errors.get(r.error or "", 0) + 1
    stats.ok = len(ok_ms)
    worst = max([timeout_s * 1000, *ok_ms])
    everything = ok_ms + [worst] * len(failed)
    stats.p50_ms, stats.p99_ms = percentile(everything, 0.5), percentile(everything, 0.99)
    if ok_ms:
        stats.ok_p50_ms, stats.ok_p99_ms = percentile(ok_ms, 0.5), percentile(ok_ms, 0.99)
    first = min(r.scheduled for r in records)
    last_ok = max((r.done for r in records if r.error is None), default=first)
    span = max(last_ok - first, duration_s)
    stats.achieved_per_s = stats.ok / span
    stats.send_lag_p99_ms = percentile(sorted((r.sent - r.scheduled) * 1000 for r in records), 0.99)
    return stats


def search_max(measure: Callable[[float], RunStats], rates: list[float], p99_limit_ms: float,
               refine_steps: int = 0) -> tuple[float, list[RunStats]]:
    """Step up through `rates`, measuring each with `measure(rate)`, and stop at the first rate not
    sustained; then bisect `refine_steps` times between the last sustained rate and that one. Returns the
    highest sustained rate (0 if none) and every run made, in order."""
    best, failed, runs = 0.0, None, []
    for rate in sorted(rates):
        stats = measure(rate)
        runs.append(stats)
        if not stats.sustained(p99_limit_ms):
            failed = rate
            break
        best = rate
    for _ in range(refine_steps if failed is not None and best > 0 else 0):
        assert failed is not None
        mid = round((best + failed) / 2)
        if mid in (best, failed):
            break
        stats = measure(mid)
        runs.append(stats)
        if stats.sustained(p99_limit_ms):
            best = mid
        else:
            failed = mid
    return best, runs


# ------------------------------------------------------------------------------ the generator


@dataclass(frozen=True)
class RunSpec:
    path: GatewayPath
    rate: float
    duration_s: float
    timeout_s: float = 10.0
    prompt_chars: int = 1024
    max_tokens: int = 64
    warmup_requests: int = 20


async def drive(spec: RunSpec) -> list[Record]:
    """Warm the path up (connections opened; not recorded), then run the paced schedule."""
    adapter = build_adapter(spec.path)
    await adapter.open()
    loop = asyncio.get_running_loop()
    records: list[Record] = []
    model, timeout = spec.path.model, spec.timeout_s
    offsets = schedule(spec.rate, spec.duration_s)
    prompts = [prompt(i, spec.prompt_chars) for i in range(len(offsets))]  # built before the clock starts

    async def one(i: int, scheduled: float) -> None:
        sent = loop.time()
        error: str | None = None
        try:
            await asyncio.wait_for(adapter.chat(model, prompts[i], spec.max_tokens), timeout)
        except TimeoutError:
            error = "timeout"
        except FailedRequestError as exc:
            error = exc.kind
        except Exception as exc:  # an adapter's own failure is counted under its class, not raised
            error = type(exc).__name__
        records.append(Record(scheduled, sent, loop.time(), error))

    try:
        for i in range(spec.warmup_requests):
            try:
                await asyncio.wait_for(adapter.chat(model, prompt(-1 - i, spec.prompt_chars),
                                                    spec.max_tokens), timeout)
            except Exception:  # warm-up failures show again in the measured run
                continue
        tasks = []
        t0 = loop.time() + 0.05
        for i, offset in enumerate(offsets):
            delay = t0 + offset - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, t0 + offset)))
        await asyncio.gather(*tasks)
    finally:
        await adapter.close()
    return records


def _child(spec: RunSpec, conn: Any) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    try:
        conn.send(("ok", asyncio.run(drive(spec))))
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def run_in_process(spec: RunSpec) -> RunStats:
    """One paced run in a fresh spawned process; its records come back over a pipe."""
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(spec, sender), name=f"loadgen-{spec.path.name}")
    proc.start()
    sender.close()
    budget = spec.duration_s + spec.timeout_s * (spec.warmup_requests + 2) + 60
    if not receiver.poll(budget):
        proc.kill()
        proc.join()
        raise TimeoutError(f"load generator for {spec.path.name} at {spec.rate}/s gave no result "
                           f"in {budget} s")
    try:
        status, payload = receiver.recv()
    except EOFError:  # the child died before it could report (its traceback is on stderr)
        proc.join(30)
        raise RuntimeError(f"load generator for {spec.path.name} exited with {proc.exitcode} "
                           "without a result") from None
    proc.join(30)
    if status != "ok":
        raise RuntimeError(f"load generator for {spec.path.name} failed: {payload}")
    return summarize(spec.path.name, spec.rate, spec.duration_s, payload, spec.timeout_s)
