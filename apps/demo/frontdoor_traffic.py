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


async def _drive(base_url: str, key: str, count: int, duration_s: float,
                 models: tuple[str, ...]) -> FrontDoorStats:
    import openai

    stats = FrontDoorStats(sent=count)
    client = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key=key, max_retries=2, timeout=120)
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
                    models: tuple[str, ...] = ("gpt-4o-mini", "claude-3-5-haiku")) -> FrontDoorStats:
    """Send `count` calls over `duration_s` seconds through the front door; blocks until all are answered."""
    return asyncio.run(_drive(base_url, key, count, duration_s, models))
