"""The semantic cache's embedder: batches, remembers, and sheds instead of queueing without bound."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from gateway_consumer.cache.semantic import BatchingEmbedder
from shared.embeddings.minilm import DEFAULT_MODEL_DIR, Array, MiniLM, _length_groups


class SlowModel:
    """Stands in for MiniLM: a fixed cost per text, a vector that names the text, calls recorded."""

    def __init__(self, seconds_per_text: float = 0.0, fail: bool = False) -> None:
        self.seconds_per_text, self.fail = seconds_per_text, fail
        self.calls: list[list[str]] = []

    def embed(self, texts: list[str]) -> Array:
        self.calls.append(list(texts))
        time.sleep(self.seconds_per_text * len(texts))
        if self.fail:
            raise RuntimeError("model broke")
        return np.array([[float(len(t)), 1.0] for t in texts], dtype=np.float32)


def _embedder(model: SlowModel, **kwargs: float) -> BatchingEmbedder:
    return BatchingEmbedder(model, **kwargs)  # type: ignore[arg-type]


def test_identical_texts_share_one_model_call_and_are_remembered() -> None:
    model = SlowModel()
    embedder = _embedder(model)

    async def run() -> list[Array | None]:
        first = await asyncio.gather(*(embedder.embed(t) for t in ["a", "bb", "a", "a"]))
        return [*first, await embedder.embed("bb")]

    vectors = asyncio.run(run())
    assert model.calls == [["a", "bb"]]  # one call, each distinct text once; the later "bb" from memory
    assert [v[0] for v in vectors if v is not None] == [1.0, 2.0, 1.0, 1.0, 2.0]
    assert (embedder.computed, embedder.memo_hits, embedder.shed) == (2, 1, 0)


def test_a_backlog_longer_than_max_wait_is_shed_at_once() -> None:
    model = SlowModel(seconds_per_text=0.02)
    embedder = _embedder(model, max_wait_s=0.05, window_s=0.0)
    embedder.seconds_per_text = 0.02

    async def run() -> tuple[list[Array | None], float]:
        started = time.perf_counter()
        results = await asyncio.gather(*(embedder.embed(f"text {i}") for i in range(20)))
        return results, time.perf_counter() - started

    results, took = asyncio.run(run())
    admitted = [r for r in results if r is not None]
    # (queued + in flight + itself) x 20 ms must stay within 50 ms: two texts are admitted, the rest shed
    assert len(admitted) == 2 and embedder.shed == 18
    assert took < 0.2  # nobody waited for the shed ones


def test_an_idle_embedder_takes_a_text_even_when_its_estimate_is_over_budget() -> None:
    model = SlowModel(seconds_per_text=0.001)
    embedder = _embedder(model, max_wait_s=0.01)
    embedder.seconds_per_text = 1.0  # a stale, pessimistic estimate must not shed forever

    vector = asyncio.run(embedder.embed("hello"))
    assert vector is not None and embedder.seconds_per_text < 1.0


def test_a_failing_model_answers_every_waiter_without_a_vector() -> None:
    embedder = _embedder(SlowModel(fail=True))

    async def run() -> list[Array | None]:
        return await asyncio.wait_for(asyncio.gather(*(embedder.embed(t) for t in "abc")), 5)

    assert asyncio.run(run()) == [None, None, None]


def test_offload_runs_on_the_embedders_thread_and_is_shed_behind_a_long_backlog() -> None:
    model = SlowModel(seconds_per_text=0.03)
    embedder = _embedder(model, max_wait_s=0.05, window_s=0.0)
    embedder.seconds_per_text = 0.03

    def where() -> str:
        return threading.current_thread().name

    def broken() -> None:
        raise RuntimeError("cross-encoder broke")

    async def run() -> tuple[str | None, str | None, None]:
        alone = await embedder.offload(where)
        texts = [asyncio.ensure_future(embedder.embed(f"t{i}")) for i in range(3)]
        await asyncio.sleep(0)  # queued: (3 + 1) x 30 ms is past the 50 ms budget
        behind = await embedder.offload(where)
        await asyncio.gather(*texts)
        return alone, behind, await embedder.offload(broken)

    alone, behind, failed = asyncio.run(run())
    assert alone is not None and alone.startswith("embedder")
    assert behind is None and failed is None and embedder.shed >= 1


def test_a_text_behind_a_long_offloaded_call_is_shed() -> None:
    embedder = _embedder(SlowModel(), max_wait_s=0.05, window_s=0.0)
    embedder.seconds_per_offload = 0.1  # a cross-encoder pass longer than the budget

    async def run() -> tuple[float | None, Array | None, Array | None]:
        judging = asyncio.ensure_future(embedder.offload(time.sleep, 0.1))
        await asyncio.sleep(0.01)  # the call is running on the embedder's thread
        during = await embedder.embed("behind the cross-encoder")
        await judging
        return judging.result(), during, await embedder.embed("after it")

    _, during, after = asyncio.run(run())
    assert during is None and after is not None and embedder.shed == 1


def test_memo_keeps_only_the_most_recent_texts() -> None:
    model = SlowModel()
    embedder = _embedder(model, memo_entries=2)

    async def run() -> None:
        for text in ("a", "b", "c", "a"):
            await embedder.embed(text)

    asyncio.run(run())
    assert [c for call in model.calls for c in call] == ["a", "b", "c", "a"]  # "a" had been dropped


def test_length_groups_keep_similar_lengths_together() -> None:
    groups = _length_groups([10, 100, 11, 12, 95, 30])
    assert groups == [[0, 2, 3], [5], [4, 1]]
    assert sorted(i for g in groups for i in g) == list(range(6))


@pytest.mark.skipif(not DEFAULT_MODEL_DIR.exists(), reason="model weights not installed (make setup)")
def test_grouped_batches_embed_as_each_text_alone() -> None:
    model = MiniLM()
    texts = ["How do I reset my password?", "Please write about " + "stream gateway token " * 20, "hi"]
    together = model.embed(texts)
    alone = np.vstack([model.embed([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-5)


def test_a_core_share_spaces_model_calls_and_sheds_what_would_wait_out_the_rest() -> None:
    model = SlowModel(seconds_per_text=0.02)
    embedder = _embedder(model, max_wait_s=0.05, window_s=0.0, max_core_share=0.25)

    async def run() -> tuple[list[Array | None], list[Array | None], float]:
        first = await asyncio.gather(embedder.embed("one"))  # 20 ms of work, then 60 ms of rest
        during_rest = await asyncio.gather(*(embedder.embed(f"rest {i}") for i in range(3)))
        await asyncio.sleep(0.07)  # the rest is over
        started = time.perf_counter()
        after = await embedder.embed("after")
        return first + during_rest, [after], time.perf_counter() - started

    before, after, took = asyncio.run(run())
    assert before[0] is not None
    assert before[1:] == [None, None, None]  # the rest (60 ms) is past the 50 ms anybody may wait
    assert after[0] is not None and took < 0.05
    assert embedder.shed == 3 and model.calls == [["one"], ["after"]]


def test_a_text_admitted_during_a_short_rest_waits_for_it() -> None:
    model = SlowModel(seconds_per_text=0.02)
    embedder = _embedder(model, max_wait_s=0.1, window_s=0.0, max_core_share=0.5)

    async def run() -> tuple[float, float]:
        await embedder.embed("one")  # 20 ms of work, then 20 ms of rest
        started = time.perf_counter()
        await embedder.embed("two")
        return time.perf_counter() - started, time.perf_counter()

    waited, _ = asyncio.run(run())
    assert 0.035 <= waited < 0.09, waited  # its rest (~20 ms) and its own 20 ms
    assert embedder.shed == 0 and model.calls == [["one"], ["two"]]
