"""Semantic answer cache: a paraphrase of a recent prompt gets the recent answer.

Scope: team, requested model, generation parameters and the whole conversation except its last user
message must be identical (hashed); only that last message is matched by meaning. Candidates come from a
faiss inner-product index per scope (unit vectors, so inner product = cosine); a candidate above the
threshold is used only if `match.Matcher` accepts it: no conflicting numbers or negation (embeddings
alone score "top 5" and "top 3" as the same question), then the overlap model (microseconds) or, for
what it refuses, the cross-encoder, which reads both texts together. The cross-encoder runs on the
embedder's thread, for all of a lookup's refused candidates in one call, and is shed like an embedding
when that thread is behind (`BatchingEmbedder.offload`).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from gateway_consumer.cache.exact import CachedAnswer, message_shape, params_shape
from gateway_consumer.cache.match import Matcher
from gateway_consumer.cache.verify import Signature, signature
from shared.embeddings.minilm import Array, MiniLM
from streamgate.config import SemanticCacheSettings
from streamgate.observability.metrics import SEMANTIC_EMBEDDINGS, SEMANTIC_SHED

log = logging.getLogger("streamgate.semantic_cache")
_SHED_BACKLOG, _SHED_ERROR = SEMANTIC_SHED.labels("backlog"), SEMANTIC_SHED.labels("embedder_error")
_MEMO_HITS, _COMPUTED = SEMANTIC_EMBEDDINGS.labels("memo"), SEMANTIC_EMBEDDINGS.labels("model")


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
    entries: dict[int, tuple[CachedAnswer, str, Signature]] = field(default_factory=dict)


T = TypeVar("T")
#: A screened candidate: its answer, its prompt, the cosine to the incoming prompt, the prompt's signature.
_Candidate = tuple[CachedAnswer, str, float, Signature]
#: Runs a blocking call off the event loop; None when it was shed (BatchingEmbedder.offload).
Offload = Callable[..., Awaitable[Any]]


async def run_inline(fn: Callable[..., T], *args: Any) -> T:
    """An `Offload` that runs the call where it is (for tools and benchmarks without an event loop's
    latency to protect)."""
    return fn(*args)


def _one_search_thread() -> None:
    """faiss searches on one thread, process-wide. A lookup searches one scope's few hundred to few
    thousand vectors on the event loop: handing that to OpenMP's second thread costs more than the
    search (100 entries: 265 µs against 15 µs on this machine), and its spinning worker takes the other
    core from the broker and the embedder (at 500/s the gateway worker took 74% of a core with the
    semantic cache, 38% without it, 12% of its samples in `IndexIDMap.search`)."""
    faiss.omp_set_num_threads(1)


class SemanticCache:
    def __init__(
        self,
        threshold: float,
        ttl_s: float,
        max_entries_per_scope: int,
        matcher: Matcher,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _one_search_thread()
        self.threshold, self._ttl, self._max, self._clock = threshold, ttl_s, max_entries_per_scope, clock
        self.matcher = matcher
        self._scopes: dict[str, _Scope] = {}
        self._next_id = 0
        self.hits = self.misses = self.rejected_by_verify = self.unjudged = 0

    async def lookup(self, scope: str, text: str, vector: Array, offload: Offload = run_inline
                     ) -> CachedAnswer | None:
        """The answer of the closest cached prompt the matcher accepts, or None. The overlap model
        judges first; the cross-encoder runs through `offload` for the candidates it refused, and when
        it is shed (None) the request is a miss (`unjudged`)."""
        wanted = signature(text)
        candidates = self._screened(scope, text, vector, wanted)
        refused = []
        for answer, cached, cosine, sig in candidates:
            if self.matcher.quick(cached, text, cosine, sig, wanted):
                self.hits += 1
                return answer
            refused.append((answer, cached))
        if refused and self.matcher.scorer is None:  # the overlap model alone decides
            self.rejected_by_verify += len(refused)
        elif refused:
            verdicts = await offload(self.matcher.judge, text, [cached for _, cached in refused])
            if verdicts is None:
                self.unjudged += 1
            else:
                for (answer, _), accepted in zip(refused, verdicts, strict=True):
                    if accepted:
                        self.hits += 1
                        return answer
                    self.rejected_by_verify += 1
        self.misses += 1
        return None

    def _screened(self, scope: str, text: str, vector: Array, wanted: Signature) -> list[_Candidate]:
        """The nearest live entries that pass the matcher's cheap stages, closest first (at most 4)."""
        found = self._scopes.get(scope)
        if found is None or not found.entries:
            return []
        scores, ids = found.index.search(vector.reshape(1, -1), min(4, len(found.entries)))
        now = self._clock()
        out: list[_Candidate] = []
        for score, ident in zip(scores[0], ids[0], strict=True):
            if ident < 0 or score < self.threshold:
                break
            answer, cached_text, sig = found.entries[int(ident)]
            if answer.expires_at <= now:
                self._remove(found, [int(ident)])
            elif self.matcher.screen(cached_text, text, float(score), sig, wanted):
                out.append((answer, cached_text, float(score), sig))
            else:
                self.rejected_by_verify += 1
        return out

    def add(self, scope: str, text: str, vector: Array, answer: CachedAnswer) -> None:
        found = self._scopes.get(scope)
        if found is None:
            found = self._scopes[scope] = _Scope(faiss.IndexIDMap2(faiss.IndexFlatIP(vector.shape[-1])))
        ident = self._next_id
        self._next_id += 1
        found.index.add_with_ids(vector.reshape(1, -1), np.array([ident], dtype=np.int64))
        found.entries[ident] = (answer, text, signature(text))
        if len(found.entries) > self._max:
            self._remove(found, sorted(found.entries)[: len(found.entries) - self._max])

    @staticmethod
    def _remove(found: _Scope, ids: list[int]) -> None:
        found.index.remove_ids(np.array(ids, dtype=np.int64))
        for i in ids:
            found.entries.pop(i, None)


def _one_blas_thread() -> None:
    """The embedder's thread runs BLAS on itself only: on a small shared machine a second BLAS thread
    spins against the event loop, the broker and the other stages (measured 3x slower under load)."""
    threadpool_limits(1)


class BatchingEmbedder:
    """Embeds texts for many concurrent requests together, off the event loop, with a bounded backlog.

    One worker takes everything pending (up to `max_batch` distinct texts) per model call, so batches
    grow with load instead of queueing. The call runs on the embedder's own thread (numpy releases the
    GIL), never on the loop's shared default executor, where it could starve other work (the
    dispatcher's transaction commits once did, until they timed out).

    Work that cannot keep up is shed, never queued without bound: when the texts already waiting would
    keep a new one waiting longer than `max_wait_s` (estimated from the measured seconds per text),
    `embed` returns None at once and the request is dispatched without a semantic lookup (counted in
    `streamgate_semantic_cache_shed_total`); an idle embedder always takes a text. Vectors of recent
    texts are remembered (`memo_entries`, least recently used dropped): a text asked again costs a dict
    lookup, not a model call.
    """

    def __init__(self, model: MiniLM, *, max_wait_s: float = 0.025, max_batch: int = 64,
                 memo_entries: int = 50_000, window_s: float = 0.002, max_core_share: float = 1.0) -> None:
        self._model, self._window, self._max, self._max_wait = model, window_s, max_batch, max_wait_s
        #: after a model call of t seconds, the next starts no sooner than t * _rest later
        self._rest = 1 / max_core_share - 1
        self._resume_at = 0.0  # time.monotonic() before which no model call starts
        self._memo_max = memo_entries
        self._memo: OrderedDict[str, Array] = OrderedDict()
        self._pending: dict[str, list[asyncio.Future[Array | None]]] = {}
        self._in_flight = 0
        #: Seconds of wall time per text in recent model calls (a moving average; the first calls set it).
        self.seconds_per_text = 0.005
        #: The same for offloaded calls (the cross-encoder), and how many are queued or running.
        self.seconds_per_offload, self._offloaded = 0.02, 0
        self.shed = self.memo_hits = self.computed = 0
        self._worker: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder",
                                          initializer=_one_blas_thread)

    @classmethod
    def from_settings(cls, model: MiniLM, settings: SemanticCacheSettings) -> BatchingEmbedder:
        return cls(model, max_wait_s=settings.max_wait_ms / 1000, max_batch=settings.max_batch,
                   memo_entries=settings.memo_entries, max_core_share=settings.max_core_share)

    def backlog_s(self) -> float:
        """Estimated seconds until a text queued now would have its vector (offloaded calls and the
        rest the core share imposes included)."""
        return ((len(self._pending) + self._in_flight + 1) * self.seconds_per_text
                + self._offloaded * self.seconds_per_offload + self._resting_s())

    def _overloaded(self) -> bool:
        """Whether new work would wait past `max_wait_s` (never when the embedder is idle)."""
        idle = not (self._pending or self._in_flight or self._offloaded) and self._resting_s() == 0
        return not idle and self.backlog_s() > self._max_wait

    def _resting_s(self) -> float:
        return max(0.0, self._resume_at - time.monotonic())

    def _busy(self, seconds: float) -> None:
        """A model call took `seconds`: the next waits its share of rest."""
        if self._rest:
            self._resume_at = max(self._resume_at, time.monotonic()) + seconds * self._rest

    async def embed(self, text: str) -> Array | None:
        """The text's unit vector, or None when it is shed (backlog too long, or the model failed)."""
        if (vector := self._memo.get(text)) is not None:
            self._memo.move_to_end(text)
            self.memo_hits += 1
            _MEMO_HITS.inc()
            return vector
        waiting = self._pending.get(text)
        if waiting is None:
            # an idle embedder always takes the text: that is also how its cost estimate recovers
            if self._overloaded():
                self.shed += 1
                _SHED_BACKLOG.inc()
                return None
            waiting = self._pending[text] = []
        future: asyncio.Future[Array | None] = asyncio.get_running_loop().create_future()
        waiting.append(future)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work())
        return await future

    async def offload(self, fn: Callable[..., T], *args: Any) -> T | None:
        """Run another model call (the cross-encoder) on the embedder's thread, behind the embeddings
        already queued; None, at once, when that queue would keep it waiting longer than `max_wait_s`
        (shed like an embedding) or when the call fails."""
        if self._overloaded():
            self.shed += 1
            _SHED_BACKLOG.inc()
            return None
        self._offloaded += 1
        try:
            if (resting := self._resting_s()) > 0:
                await asyncio.sleep(resting)
            started = time.perf_counter()
            try:
                return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)
            finally:
                took = time.perf_counter() - started
                self.seconds_per_offload = 0.7 * self.seconds_per_offload + 0.3 * took
                self._busy(took)
        except Exception:
            log.exception("the semantic cache's cross-encoder failed; the request skips the cache")
            _SHED_ERROR.inc()
            return None
        finally:
            self._offloaded -= 1

    async def _work(self) -> None:
        await asyncio.sleep(self._window)  # let a first batch gather
        loop = asyncio.get_running_loop()
        while self._pending:
            if (resting := self._resting_s()) > 0:
                await asyncio.sleep(resting)
            texts = list(itertools.islice(self._pending, self._max))
            waiters = [self._pending.pop(t) for t in texts]
            self._in_flight, started = len(texts), time.perf_counter()
            try:
                vectors: Array | None = await loop.run_in_executor(self._thread, self._model.embed, texts)
            except Exception:  # every waiter is answered (without a vector); none hangs
                log.exception("embedding %d texts failed; their requests skip the semantic cache", len(texts))
                _SHED_ERROR.inc(len(texts))
                vectors = None
            finally:
                self._in_flight = 0
            spent = time.perf_counter() - started
            self._busy(spent)
            self.seconds_per_text = 0.7 * self.seconds_per_text + 0.3 * spent / len(texts)
            for i, (text, futures) in enumerate(zip(texts, waiters, strict=True)):
                vector = None if vectors is None else vectors[i]
                if vector is not None:
                    self._remember(text, vector)
                for f in futures:
                    if not f.done():
                        f.set_result(vector)
            if vectors is not None:
                self.computed += len(texts)
                _COMPUTED.inc(len(texts))

    def _remember(self, text: str, vector: Array) -> None:
        self._memo[text] = vector
        if len(self._memo) > self._memo_max:
            self._memo.popitem(last=False)
