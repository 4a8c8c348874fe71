"""The semantic cache's decision (gateway_consumer/cache/match.py), the cache's lookup around it, and the
helpers that fit and measure it: pure logic with a scripted scorer, plus the shipped cross-encoder on a
few pairs when the model is installed."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.public_paraphrases import _logistic, lowest_cut, read_mrpc, score
from gateway_consumer.cache.exact import CachedAnswer
from gateway_consumer.cache.match import ADAPTER_FILE, Matcher
from gateway_consumer.cache.overlap import FEATURES, OverlapModel, default_overlap_model, pair_features
from gateway_consumer.cache.semantic import SemanticCache
from gateway_consumer.providers import ProviderReply
from shared.embeddings.minilm import DEFAULT_MODEL_DIR
from shared.embeddings.pair_encoder import merge_adapter


def _overlap(p: float = 0.0) -> OverlapModel:
    """An overlap model at P = 0.5 for every pair: accepts all that reach it when `p` <= 0.5, none above."""
    return OverlapModel(np.zeros(len(FEATURES)), 0.0, p, {})


NEVER = _overlap(0.99)  # leaves every decision to the cross-encoder


class Scripted:
    """A scorer whose logit for a pair is looked up by its incoming text (default 10: accept)."""

    def __init__(self, logits: dict[str, float] | None = None, cut: float | None = 0.9) -> None:
        self.scripted, self.calls = logits or {}, 0
        self.provenance: dict[str, Any] = {} if cut is None else {"min_probability": cut}

    def logits(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        self.calls += 1
        return np.array([self.scripted.get(b, 10.0) for _, b in pairs], dtype=np.float32)


def test_pair_features_are_symmetric_and_bounded() -> None:
    a, b = "How do I reset my password in Kafka?", "What are the steps to reset a Kafka password?"
    fa, fb = pair_features(a, b, 0.9), pair_features(b, a, 0.9)
    assert fa.shape == (len(FEATURES),)
    assert np.allclose(fa, fb)
    named = dict(zip(FEATURES, fa, strict=True))
    for name in ("word_jaccard", "bigram_jaccard", "coverage_min", "coverage_max", "length_ratio"):
        assert 0.0 <= named[name] <= 1.0, name
    assert named["coverage_min"] <= named["coverage_max"]
    same = dict(zip(FEATURES, pair_features(a, a, 1.0), strict=True))
    assert same["word_jaccard"] == same["coverage_min"] == same["length_ratio"] == 1.0
    assert same["unshared_content_words"] == 0.0


def test_an_extra_clause_lowers_coverage() -> None:
    short = "The storm was expected to hit Louisiana on Monday."
    longer = "The storm was expected to hit Louisiana on Monday and could bring hurricane-force winds."
    named = dict(zip(FEATURES, pair_features(short, longer, 0.93), strict=True))
    assert named["coverage_max"] == 1.0  # everything the short one says, the long one says
    assert named["coverage_min"] < 0.75  # but not the other way round


def test_the_overlap_model_file_round_trips_and_refuses_other_features(tmp_path: Path) -> None:
    v = OverlapModel(np.arange(len(FEATURES), dtype=np.float64), 0.5, 0.97, {"fitted_on": "test"})
    path = tmp_path / "v.json"
    v.dump(path)
    back = OverlapModel.load(path)
    assert np.allclose(back.weights, v.weights) and back.bias == 0.5 and back.min_probability == 0.97
    assert back.provenance == {"fitted_on": "test"}
    path.write_text(path.read_text().replace('"cosine_squared"', '"something_else"'))
    with pytest.raises(ValueError, match="fitted for features"):
        OverlapModel.load(path)


def test_the_shipped_overlap_model_loads_and_was_fitted_on_the_dev_split_only() -> None:
    v = default_overlap_model()
    assert 0.0 < v.min_probability <= 1.0
    assert v.provenance["heldout"] == "never used by the fit"
    assert float(v.provenance["dev_out_of_fold_precision"]) >= 0.99  # type: ignore[arg-type]


def test_logistic_fit_separates_and_the_cut_meets_the_precision_target() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 2))
    y = x[:, 0] + 0.3 * rng.normal(size=400) > 0
    w, b = _logistic(x, y)
    assert w[0] > 3 * abs(w[1])  # the informative feature carries the weight
    p = 1 / (1 + np.exp(-(x @ w + b)))
    cut = lowest_cut(p, y, 0.99)
    accepted = p >= cut
    assert accepted.sum() > 50 and y[accepted].mean() >= 0.99
    assert lowest_cut(np.array([0.9, 0.8]), np.array([False, False]), 0.99) == math.inf

def test_the_cosine_gate_and_the_conflicts_come_before_the_judges() -> None:
    scorer = Scripted()
    matcher = Matcher(0.85, scorer, overlap=NEVER)
    assert matcher.accept("List the top 5 risks", "Name the 5 biggest risks", 0.99)
    assert not matcher.accept("List the top 5 risks", "Name the 5 biggest risks", 0.80)  # below the gate
    assert not matcher.accept("List the top 5 risks", "List the top 3 risks", 0.99)  # other numbers
    assert not matcher.accept("Books to read", "Books not to read", 0.99)  # negation
    assert not matcher.accept("Convert miles to km", "Convert km to miles", 0.99)  # word order
    assert scorer.calls == 1  # the refused ones never reached the model
    # a number on one side only, or another name, may be rewording: the model weighs it
    assert matcher.screen("List the top 5 risks", "List the top risks", 0.99)
    assert matcher.screen("Reset a password in Kafka", "Reset a password in Redis", 0.99)


def test_either_judge_serves_and_the_cross_encoder_runs_only_for_what_the_overlap_model_refused() -> None:
    # the overlap model: accept when each side covers the other (weight on coverage_min only)
    weights = np.zeros(len(FEATURES))
    weights[FEATURES.index("coverage_min")] = 20.0
    scorer = Scripted({"reset the router password and wipe all logs": -5.0,
                       "Reset a password in Redis": -5.0})
    matcher = Matcher(0.5, scorer, overlap=OverlapModel(weights, -15.0, 0.5, {}))
    assert matcher.accept("reset the router password", "reset the password of the router", 0.9)
    assert scorer.calls == 0  # the overlap model was confident: no model call
    assert not matcher.quick("reset the router password", "reset the router password and wipe all logs", 0.9)
    assert not matcher.accept("reset the router password", "reset the router password and wipe all logs", 0.9)
    assert matcher.accept("reset the router password", "please, how do I set a new router password", 0.9)
    # another name: the strict rules keep it from the overlap model, the cross-encoder refuses it
    assert not matcher.quick("Reset a password in Kafka", "Reset a password in Redis", 0.99)
    assert not matcher.accept("Reset a password in Kafka", "Reset a password in Redis", 0.99)
    assert scorer.calls == 3
    # news text names a party in several ways ("Mr So" / "So"): a subset passes the strict rules
    assert Matcher(0.85, scorer, overlap=_overlap()).quick("Mr So will report to Mr Chan",
                                                           "So will report to Mr Chan", 0.99)


def test_the_cut_is_compared_as_a_logit_so_saturated_scores_stay_apart() -> None:
    cut = 1.0 / (1.0 + math.exp(-4.995))  # 0.99327...: in float32 probabilities 5.00 and 4.99 are close
    matcher = Matcher(0.5, Scripted({"above": 5.0, "below": 4.99}, cut=cut), overlap=NEVER)
    assert matcher.judge("above", ["x"]) == [True]
    assert matcher.judge("below", ["x"]) == [False]
    assert matcher.judge("anything", []) == []


def test_the_configured_cut_overrides_the_fitted_one_and_one_is_needed() -> None:
    scorer = Scripted({"q": 1.0}, cut=0.9)
    assert Matcher(0.5, scorer, overlap=NEVER).judge("q", ["x"]) == [False]  # P(logit 1.0) = 0.73
    assert Matcher(0.5, scorer, min_probability=0.7, overlap=NEVER).judge("q", ["x"]) == [True]
    assert Matcher(0.5, Scripted(cut=0.9), min_probability=1.0, overlap=NEVER).judge("q", ["x"]) == [False]
    with pytest.raises(ValueError, match="no fitted cut"):
        Matcher(0.5, Scripted(cut=None), overlap=NEVER)


def _answer(text: str) -> CachedAnswer:
    reply = ProviderReply(content=text, finish_reason="stop", prompt_tokens=1, completion_tokens=1)
    return CachedAnswer(reply, "sim", "m", "eu", 0, expires_at=math.inf)


def test_a_lookup_judges_its_candidates_in_one_call_and_a_shed_judgement_is_a_miss() -> None:
    unit = np.array([1.0, 0.0], dtype=np.float32)
    scorer = Scripted({"refused": -3.0})
    cache = SemanticCache(0.85, 60, 100, Matcher(0.85, scorer, overlap=NEVER))
    cache.add("s", "How do I reset my password?", unit, _answer("cached"))
    cache.add("s", "How do I reset my password now?", unit, _answer("cached too"))

    async def shed(fn: Any, *args: Any) -> None:
        return None

    async def run() -> list[CachedAnswer | None]:
        return [await cache.lookup("s", "How can I reset my password?", unit),
                await cache.lookup("s", "refused", unit),
                await cache.lookup("s", "How can I reset my password?", unit, shed),
                await cache.lookup("other scope", "How can I reset my password?", unit)]

    hit, refused, unjudged, elsewhere = asyncio.run(run())
    assert hit is not None and hit.reply.content in ("cached", "cached too")
    assert refused is None and unjudged is None and elsewhere is None
    assert scorer.calls == 2  # two candidates each time, one model call per lookup; none when shed
    assert (cache.hits, cache.misses, cache.unjudged, cache.rejected_by_verify) == (1, 3, 1, 2)
    # without a cross-encoder the overlap model alone decides: refused, and no model call
    alone = SemanticCache(0.85, 60, 100, Matcher(0.85, None, overlap=NEVER))
    alone.add("s", "How do I reset my password?", unit, _answer("cached"))
    assert asyncio.run(alone.lookup("s", "How can I reset my password?", unit)) is None
    assert (alone.misses, alone.rejected_by_verify, alone.unjudged) == (1, 1, 0)


def test_the_cache_searches_on_one_thread() -> None:
    """A lookup's search is microseconds on one thread; faiss's default second OpenMP thread made it
    ~17x slower and spun on the core the broker needs (docs/benchmarks.md, semantic-cache (g))."""
    import faiss

    faiss.omp_set_num_threads(2)
    try:
        SemanticCache(0.85, 60, 100, Matcher(0.85, None, overlap=NEVER))
        assert faiss.omp_get_max_threads() == 1
    finally:
        faiss.omp_set_num_threads(1)


def test_merge_adapter_adds_the_low_rank_update_and_replaces_the_rest() -> None:
    base = {"l.weight": np.zeros((3, 2), np.float32), "l.bias": np.ones(3, np.float32),
            "e.weight": np.ones(2, np.float32)}
    a, b = np.array([[1.0], [2.0]], np.float16), np.array([[1.0, 0.0, -1.0]], np.float16)  # in=2, out=3
    merged = merge_adapter(base, {"lora_scale": np.array(0.5), "provenance": np.array("{}"), "l.lora_A": a,
                                  "l.lora_B": b, "l.bias": np.zeros(3), "head.bias": np.array(1.0)})
    assert np.allclose(merged["l.weight"], (a.astype(np.float32) @ b.astype(np.float32) * 0.5).T)
    assert merged["l.weight"].shape == (3, 2) and merged["l.weight"].dtype == np.float32
    assert np.allclose(merged["l.bias"], 0.0) and float(merged["head.bias"]) == 1.0
    assert merged["e.weight"] is base["e.weight"]
    assert not any("lora" in k for k in merged) and "provenance" not in merged


def test_the_shipped_adapter_records_its_cut_and_was_never_fitted_on_the_held_out_split() -> None:
    with np.load(ADAPTER_FILE, allow_pickle=False) as stored:
        provenance = json.loads(str(stored["provenance"]))
        assert any(k.endswith(".lora_A") for k in stored.files)
    assert 0.5 < float(provenance["min_probability"]) < 1.0
    assert provenance["heldout"] == "never used by the fit"
    assert float(provenance["calibration_precision"]) >= 0.99
    assert provenance["calibration_hits"] > 0


def test_score_counts_exact_hits_apart() -> None:
    pairs = [{"a": "x", "b": "x", "same": True}, {"a": "x", "b": "y", "same": True},
             {"a": "x", "b": "z", "same": False}]
    va = np.ones((3, 2), dtype=np.float32) / np.sqrt(2)
    out = score(pairs, va, va, lambda a, b, cos: True)
    assert out["exact_hits"] == 1 and out["semantic_hits"] == 2
    assert out["precision"] == 0.5 and out["false_hits"] == 1


def test_read_mrpc_checks_the_format(tmp_path: Path) -> None:
    good = tmp_path / "m.txt"
    good.write_text("\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tA cat sat.\tThe cat sat.\n",
                    encoding="utf-8")
    assert read_mrpc(good) == [{"a": "A cat sat.", "b": "The cat sat.", "same": True, "id": "1-2"}]
    bad = tmp_path / "b.txt"
    bad.write_text("id\tsentence1\tsentence2\tlabel\n1\ta\tb\t0\n")
    with pytest.raises(ValueError, match="MRPC"):
        read_mrpc(bad)


@pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "model.safetensors").exists(), reason="MiniLM not installed")
def test_semantic_match_with_the_shipped_model() -> None:
    from gateway_consumer.cache.match import semantic_match

    asked = "How do I reset my password in Kafka?"
    assert semantic_match(asked, asked)
    assert semantic_match(asked, "How can I reset my password in Kafka?")
    assert not semantic_match(asked, "How do I reset my password in Redis?")  # the model's call, no rule
    assert not semantic_match(asked, "Why can I not reset my password in Kafka?")
    assert not semantic_match(asked, "What is the corporate tax rate in Japan?")
