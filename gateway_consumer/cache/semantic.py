"""Semantic answer cache: a paraphrase of a recent prompt gets the recent answer.

Scope: team, requested model, generation parameters and the whole conversation except its last user
message must be identical (hashed); only that last message is matched by meaning. Candidates come from a
faiss inner-product index per scope (unit vectors, so inner product = cosine); a candidate above the
threshold is used only if `verify.compatible` agrees (same numbers, names, quotes, negation), because
embeddings alone score "top 5" and "top 3" as the same question.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np

from gateway_consumer.cache.exact import CachedAnswer, message_shape, params_shape
from gateway_consumer.cache.verify import Signature, compatible, signature
from shared.embeddings.minilm import Array, MiniLM


def semantic_parts(routed: dict[str, Any]) -> tuple[str, str] | None:
    """(scope key, text to match) or None when the request has no trailing user message."""
    messages = routed["messages"]
    if not messages or messages[-1]["role"] != "user":
        return None
    context = [*params_shape(routed), [message_shape(m) for m in messages[:-1]]]
    scope = hashlib.sha256(json.dumps(context, separators=(",", ":")).encode()).hexdigest()
    return scope, messages[-1]["content"]


@dataclass
class _Scope:
    index: Any  # faiss.IndexIDMap2
    entries: dict[int, tuple[CachedAnswer, Signature]] = field(default_factory=dict)


class SemanticCache:
    def __init__(
        self,
        threshold: float,
        ttl_s: float,
        max_entries_per_scope: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold, self._ttl, self._max, self._clock = threshold, ttl_s, max_entries_per_scope, clock
        self._scopes: dict[str, _Scope] = {}
        self._next_id = 0
        self.hits = self.misses = self.rejected_by_verify = 0

    def lookup(self, scope: str, text: str, vector: Array) -> CachedAnswer | None:
        found = self._scopes.get(scope)
        if found is None or not found.entries:
            self.misses += 1
            return None
        scores, ids = found.index.search(vector.reshape(1, -1), min(4, len(found.entries)))
        wanted, now = signature(text), self._clock()
        for score, ident in zip(scores[0], ids[0], strict=True):
            if ident < 0 or score < self.threshold:
                break
            answer, sig = found.entries[int(ident)]
            if answer.expires_at <= now:
                self._remove(found, [int(ident)])
                continue
            if compatible(sig, wanted):
                self.hits += 1
                return answer
            self.rejected_by_verify += 1
        self.misses += 1
        return None

    def add(self, scope: str, text: str, vector: Array, answer: CachedAnswer) -> None:
        found = self._scopes.get(scope)
        if found is None:
            found = self._scopes[scope] = _Scope(faiss.IndexIDMap2(faiss.IndexFlatIP(vector.shape[-1])))
        ident = self._next_id
        self._next_id += 1
        found.index.add_with_ids(vector.reshape(1, -1), np.array([ident], dtype=np.int64))
        found.entries[ident] = (answer, signature(text))
        if len(found.entries) > self._max:
            self._remove(found, sorted(found.entries)[: len(found.entries) - self._max])

    @staticmethod
    def _remove(found: _Scope, ids: list[int]) -> None:
        found.index.remove_ids(np.array(ids, dtype=np.int64))
        for i in ids:
            found.entries.pop(i, None)


class BatchingEmbedder:
    """Embeds texts for many concurrent requests together, off the event loop, one batch at a time.

    One worker takes everything pending (up to `max_batch`) per model call, so batches grow with load
    instead of queueing: a burst costs a few large calls, not thousands of small ones. The call runs on
    the embedder's own thread (numpy releases the GIL), never on the loop's shared default executor,
    where it could starve other work (the dispatcher's transaction commits once did, until they timed out).
    """

    def __init__(self, model: MiniLM, window_s: float = 0.002, max_batch: int = 64) -> None:
        self._model, self._window, self._max = model, window_s, max_batch
        self._pending: list[tuple[str, asyncio.Future[Array]]] = []
        self._worker: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")

    async def embed(self, text: str) -> Array:
        future: asyncio.Future[Array] = asyncio.get_running_loop().create_future()
        self._pending.append((text, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work())
        return await future

    async def _work(self) -> None:
        await asyncio.sleep(self._window)  # let a first batch gather
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending[: self._max], self._pending[self._max :]
            try:
                vectors = await loop.run_in_executor(self._thread, self._model.embed, [t for t, _ in batch])
            except Exception as exc:  # every waiter learns of it; none hangs
                for _, f in batch:
                    if not f.done():
                        f.set_exception(exc)
                continue
            for (_, f), v in zip(batch, vectors, strict=True):
                if not f.done():
                    f.set_result(v)
