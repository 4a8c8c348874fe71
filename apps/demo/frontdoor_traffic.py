"""The demo's front-door traffic: part of the workload sent as a service would, with the official `openai`
SDK pointed at `streamgate serve`, half of it streamed. What callers saw goes into the summary."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

#: prompts of the kind the Kafka workload sends, a few with an e-mail address (redacted on the way)
_PROMPTS = ("Summarise the incident report for the on-call channel.",
            "Draft a reply to alex@example.com about the refund.",
            "List three risks of the migration plan.",
            "Rewrite this query for a search engine: cheap flights to Oslo in May.")


@dataclass
class FrontDoorStats:
    sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    streamed: int = 0

    def percentile(self, values: list[float], q: float) -> float | None:
        if not values:
            return None
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _one(client: object, i: int, model: str, stats: FrontDoorStats) -> None:
    import openai

    assert isinstance(client, openai.AsyncOpenAI)
    messages: Any = [{"role": "user", "content": f"{_PROMPTS[i % len(_PROMPTS)]} (#{i})"}]
    began = time.perf_counter()
    try:
        if i % 2:
            stats.streamed += 1
            stream = await client.chat.completions.create(model=model, messages=messages,
                                                          stream=True, stream_options={"include_usage": True})
            first = None
            async for chunk in stream:
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter()
            if first is not None:
                stats.ttft_ms.append((first - began) * 1000)
        else:
            await client.chat.completions.create(model=model, messages=messages)
        stats.statuses["200"] += 1
        stats.latencies_ms.append((time.perf_counter() - began) * 1000)
    except openai.APIStatusError as exc:
        stats.statuses[str(exc.status_code)] += 1
    except openai.APIError as exc:
        stats.statuses[type(exc).__name__] += 1


#: The SDK's own timeout is the front door's plus this: the front door's 504 for a request still in the
#: pipeline says not to retry it (`x-should-retry: false`); an SDK timing out first would resend it.
CLIENT_TIMEOUT_MARGIN_S = 15.0


async def _drive(base_url: str, key: str, count: int, duration_s: float,
                 models: tuple[str, ...], door_timeout_s: float) -> FrontDoorStats:
    import openai

    stats = FrontDoorStats(sent=count)
    client = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key=key, max_retries=2,
                                timeout=door_timeout_s + CLIENT_TIMEOUT_MARGIN_S)
    gap = duration_s / count if count else 0.0
    tasks = []
    for i in range(count):
        tasks.append(asyncio.create_task(_one(client, i, models[i % len(models)], stats)))
        if gap:
            await asyncio.sleep(gap)
    await asyncio.gather(*tasks)
    await client.close()
    return stats


def drive_frontdoor(base_url: str, key: str, count: int, duration_s: float,
                    models: tuple[str, ...] = ("gpt-4o-mini", "claude-3-5-haiku"),
                    door_timeout_s: float = 120.0) -> FrontDoorStats:
    """Send `count` calls over `duration_s` seconds through the front door (its `frontdoor.timeout_s` is
    `door_timeout_s`); blocks until all are answered."""
    return asyncio.run(_drive(base_url, key, count, duration_s, models, door_timeout_s))


def pick_port(host: str, preferred: int) -> int:
    """`preferred` if free here, else one the OS picks (a second demo must not fight over 8080)."""
    import socket

    with socket.socket() as sock:
        try:
            sock.bind((host, preferred))
        except OSError:
            sock.bind((host, 0))
        return int(sock.getsockname()[1])


class FrontDoorTraffic:
    """Runs :func:`drive_frontdoor` on a thread beside the Kafka workload; `result()` waits for it."""

    def __init__(self, base_url: str, key: str, count: int, duration_s: float,
                 door_timeout_s: float = 120.0) -> None:
        import threading

        self.stats: FrontDoorStats | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(base_url, key, count, duration_s,
                                                                door_timeout_s),
                                        name="frontdoor-traffic", daemon=True)
        self._thread.start()

    def _run(self, base_url: str, key: str, count: int, duration_s: float, door_timeout_s: float) -> None:
        try:
            self.stats = drive_frontdoor(base_url, key, count, duration_s, door_timeout_s=door_timeout_s)
        except BaseException as exc:  # reported in the summary, never a traceback
            self.error = exc

    def result(self, timeout_s: float) -> FrontDoorStats | None:
        self._thread.join(timeout_s)
        return self.stats


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def summary_line(stats: FrontDoorStats | None, error: BaseException | None) -> str:
    if stats is None:
        return f"[yellow]front door: no result ({error or 'still running'})[/]"
    codes = ", ".join(f"{code}: {n:,}" for code, n in sorted(stats.statuses.items()))
    p50, p99 = stats.percentile(stats.latencies_ms, 0.5), stats.percentile(stats.latencies_ms, 0.99)
    ttft = stats.percentile(stats.ttft_ms, 0.5)
    return (f"[bold]front door[/] (official openai SDK over HTTP): {stats.sent:,} calls, {stats.streamed:,} "
            f"streamed; status {codes}; latency p50 {_ms(p50)}, p99 {_ms(p99)}; time to first token p50 "
            f"{_ms(ttft)}")


def wait_until_up(base_url: str, timeout_s: float = 120) -> None:
    """The front door answers /healthz (its key ring and reply reader are in place)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"the front door at {base_url} did not come up within {timeout_s:.0f} s "
                       "(see its log under <state>/logs/frontdoor.log)")
