"""Synthetic, seeded telemetry: many teams, keys and models, retries, cache hits and late arrivals.

Used where the aggregator must be fed far faster than the simulator answers (its tests and benchmark).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any

_TEAMS = {"search": ("ranker", "query-rewrite"), "support": ("chatbot",), "research": ("evals",),
          "marketing": ("copy",), "platform": ("infra", "tools")}
_MODELS = (("openai", "gpt-4o-mini"), ("openai", "gpt-4o"), ("azure", "gpt-4o-mini"),
           ("anthropic", "claude-3-5-haiku-latest"), ("together_ai", "meta-llama/Llama-3-70b-chat-hf"))


def telemetry_events(count: int, *, start_ms: int, span_ms: int = 300_000, late_share: float = 0.02,
                     seed: int = 11) -> Iterator[dict[str, Any]]:
    """`count` attempts with event times rising across `span_ms`; `late_share` arrive minutes late."""
    rng = random.Random(seed)
    for n in range(count):
        team = rng.choice(list(_TEAMS))
        provider, model = rng.choice(_MODELS)
        at = start_ms + n * span_ms // max(count, 1)
        if rng.random() < late_share:
            at -= rng.randint(120_000, 600_000)
        ok = rng.random() > 0.05
        cached = rng.random() < 0.1
        prompt, completion = rng.randint(5, 4000), rng.randint(0, 800) if ok else 0
        rid = str(uuid.UUID(int=rng.getrandbits(128)))
        yield {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128))), "request_id": rid, "trace_id": rid,
            "attempt": rng.choice((1, 1, 1, 2)), "fallback_index": 0, "team": team,
            "project": rng.choice(_TEAMS[team]), "api_key_id": f"sha256:{team}-{rng.randint(1, 3)}",
            "user_id": None, "provider": provider, "model": model, "region": "us",
            "status": "ok" if ok else "error", "error_class": None if ok else "server_error",
            "http_status": 200 if ok else 500, "stream": False, "prompt_tokens": prompt,
            "completion_tokens": completion, "cached_tokens": 0, "reasoning_tokens": 0,
            "usage_source": "provider", "latency_ms": rng.lognormvariate(6, 0.6), "ttft_ms": None,
            "cache_hit": cached, "cache_kind": "exact" if cached else None,
            "cost_nanousd": 0 if cached else prompt * 150 + completion * 600, "price_version": "test",
            "routing_config_version": "v1", "tags": {}, "started_at": at - 500, "ended_at": at,
        }
