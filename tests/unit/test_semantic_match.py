"""The semantic cache's decision (gateway_consumer/cache/match.py) and the fit that tunes it
(bench/public_paraphrases.py): pure logic, plus the shipped model on a few pairs when it is installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.public_paraphrases import _logistic, _lowest_probability, read_mrpc, score
from gateway_consumer.cache.match import FEATURES, Matcher, Verifier, default_verifier, pair_features
from shared.embeddings.minilm import DEFAULT_MODEL_DIR


def _always(p: float = 0.0) -> Verifier:
    """A verifier that accepts everything that reaches it (the rules and the cosine gate still apply)."""
    return Verifier(np.zeros(len(FEATURES)), 0.0, p, {})


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


def test_the_cosine_gate_and_the_word_rules_come_before_the_model() -> None:
    matcher = Matcher(0.85, _always())
    assert matcher.accept("List the top 5 risks", "List the top 5 risks", 0.99)
    assert not matcher.accept("List the top 5 risks", "List the top 5 risks", 0.80)  # below the gate
    assert not matcher.accept("List the top 5 risks", "List the top 3 risks", 0.99)  # another number
    assert not matcher.accept("Convert miles to km", "Convert km to miles", 0.99)  # word order
    assert not matcher.accept("Books to read", "Books not to read", 0.99)  # negation


def test_another_name_is_refused_and_an_extra_one_is_the_models_to_weigh() -> None:
    # news-style text names one party in several ways ("Mr So" / "So"): a subset passes the rules
    assert not Matcher(0.85, _always()).accept("Reset a password in Kafka", "Reset a password in Redis", 0.99)
    assert Matcher(0.85, _always()).accept("Mr So will report to Mr Chan", "So will report to Mr Chan", 0.99)


def test_the_model_decides_what_the_rules_let_through() -> None:
    # weight only on coverage_min: accept when each side covers the other
    weights = np.zeros(len(FEATURES))
    weights[FEATURES.index("coverage_min")] = 20.0
    matcher = Matcher(0.5, Verifier(weights, -15.0, 0.5, {}))
    assert matcher.accept("reset the router password", "reset the password of the router", 0.9)
    assert not matcher.accept("reset the router password", "reset the router password and wipe all logs", 0.9)


def test_the_verifier_file_round_trips_and_refuses_other_features(tmp_path: Path) -> None:
    v = Verifier(np.arange(len(FEATURES), dtype=np.float64), 0.5, 0.97, {"fitted_on": "test"})
    path = tmp_path / "v.json"
    v.dump(path)
    back = Verifier.load(path)
    assert np.allclose(back.weights, v.weights) and back.bias == 0.5 and back.min_probability == 0.97
    assert back.provenance == {"fitted_on": "test"}
    path.write_text(path.read_text().replace('"cosine_squared"', '"something_else"'))
    with pytest.raises(ValueError, match="fitted for features"):
        Verifier.load(path)


def test_the_shipped_verifier_loads_and_was_fitted_on_the_dev_split_only() -> None:
    v = default_verifier()
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
    cut = _lowest_probability(p, y, 0.99)
    accepted = p >= cut
    assert accepted.sum() > 50 and y[accepted].mean() >= 0.99
    assert _lowest_probability(np.array([0.9, 0.8]), np.array([False, False]), 0.99) == 1.0


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
    assert not semantic_match(asked, "How do I reset my password in Redis?")
    assert not semantic_match(asked, "Why can I not reset my password in Kafka?")
    assert not semantic_match(asked, "What is the corporate tax rate in Japan?")
