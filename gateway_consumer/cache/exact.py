"""Exact-match answer cache, scoped per team and requested model, with a TTL.

The key is a hash of everything that shapes an answer (messages and generation parameters), so two
teams never share an answer and a different temperature is a different entry. In-process: each
dispatcher keeps its own; requests of one conversation land on one dispatcher (keyed partitions).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway_consumer.providers.base import ProviderReply


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    reply: ProviderReply
    provider: str
    model: str
    region: str
    target_index: int
    expires_at: float


def message_shape(m: Any) -> list[Any]:
    """What of one message shapes an answer (tool calls and results included)."""
    return [m["role"], m["content"], m.get("tool_calls_json"), m.get("tool_call_id")]


def params_shape(routed: dict[str, Any]) -> list[Any]:
    """The team, the model asked for and every generation parameter that shapes an answer."""
    p = routed["params"]
    return [routed["team"], routed["requested_model"], p.get("max_tokens"), p.get("temperature"),
            p.get("top_p"), p.get("response_format"), p.get("stop"), p.get("tools_json"),
            p.get("tool_choice_json"), p.get("response_schema_json"), p.get("extra_json")]


def cache_key(routed: dict[str, Any]) -> str:
    shape = [*params_shape(routed), [message_shape(m) for m in routed["messages"]]]
    return hashlib.sha256(json.dumps(shape, separators=(",", ":")).encode()).hexdigest()


class ExactCache:
    def __init__(self, ttl_s: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl, self._max, self._clock = ttl_s, max_entries, clock
        self._entries: OrderedDict[str, CachedAnswer] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: str) -> CachedAnswer | None:
        entry = self._entries.get(key)
        if entry is None or entry.expires_at <= self._clock():
            if entry is not None:
                del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: str, reply: ProviderReply, provider: str, model: str, region: str, index: int) -> None:
        self._entries[key] = CachedAnswer(reply, provider, model, region, index, self._clock() + self._ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
