"""The semantic cache's decision: may the answer cached for one prompt be served for another?

Three stages, cheapest first, each only for what passed the one before:
1. cosine similarity of the MiniLM sentence vectors (the faiss lookup) at least `threshold`;
2. the exact rules of `verify.compatible`: the same numbers, quoted strings, negation, polarity words
   and word order, because embeddings score "top 5" and "top 3" as the same question;
3. a small logistic model over features of the pair (cosine, word and bigram overlap, how much of each
   text the other covers, length ratio, words and names only one side has, length), whose weights and
   acceptance probability are fitted on a labeled *development* split
   (`python -m bench.public_paraphrases fit`)
   and shipped beside this file (`verifier.json`). Cosine plus word rules reached only 0.83 precision on
   public paraphrase data with hard negatives: pairs that share most words and differ in the one detail
   that changes the answer ("... and was expected to hit Texas or Louisiana" / "... could have
   hurricane-force winds when it hits Louisiana"). The model sees how much each side says that the
   other does not.

Stage 3 costs microseconds: it needs the two texts and the two vectors the lookup already has, never
another model call, so the embedder's load (and its shedding) is unchanged.

`semantic_match(cached, incoming)` is the whole default decision on two strings (it embeds them with
the shipped MiniLM); the cache calls `Matcher.accept` with the vectors it already holds.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from gateway_consumer.cache.verify import Signature, compatible, signature

VERIFIER_FILE = Path(__file__).resolve().parent / "verifier.json"
#: Feature names, in the order of `pair_features` (the fitted weights follow this order).
FEATURES = (
    "cosine",
    "word_jaccard",
    "bigram_jaccard",
    "coverage_min",
    "coverage_max",
    "length_ratio",
    "unshared_content_words",
    "cosine_squared",
    "unshared_names",
    "same_names",
    "log_length",
    "unshared_content_words_x_log_length",
)
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
#: Function words: their presence says little about whether two prompts ask the same thing.
_STOP_WORDS = (
    "a an the of to in on at for by with from and or but is are was were be been being it its this that "
    "these those i you he she we they me my your our their his her do does did can could would should "
    "will shall may might must have has had as so if then than there here what which who whom how why "
    "when where about into over under up down out also just very s"
)
_STOP = frozenset(_STOP_WORDS.split())


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def pair_features(a: str, b: str, cosine: float, sig_a: Signature | None = None,
                  sig_b: Signature | None = None) -> NDArray[np.float64]:
    """Features of a candidate pair (symmetric in a and b), in the order of `FEATURES`."""
    names_a, names_b = (sig_a or signature(a)).names, (sig_b or signature(b)).names
    ta, tb = _tokens(a), _tokens(b)
    sa, sb = set(ta), set(tb)
    ca, cb = sa - _STOP, sb - _STOP
    ga, gb = set(itertools.pairwise(ta)), set(itertools.pairwise(tb))
    shared = len(ca & cb)
    cover_a, cover_b = shared / max(len(ca), 1), shared / max(len(cb), 1)
    unshared, log_length = math.log1p(len(ca ^ cb)), math.log1p(max(len(ta), len(tb)))
    return np.array(
        [
            cosine,
            len(sa & sb) / max(len(sa | sb), 1),
            len(ga & gb) / max(len(ga | gb), 1),
            min(cover_a, cover_b),
            max(cover_a, cover_b),
            min(len(ta), len(tb)) / max(len(ta), len(tb), 1),
            unshared,
            cosine * cosine,
            len(names_a ^ names_b) / max(len(names_a | names_b), 1),
            float(names_a == names_b),
            log_length,
            unshared * log_length,
        ],
        dtype=np.float64,
    )


@dataclass(frozen=True)
class Verifier:
    """Logistic model over `pair_features`: accept when P(same answer) >= `min_probability`."""

    weights: NDArray[np.float64]
    bias: float
    min_probability: float
    #: Where the weights came from (data, split, dev precision): recorded with them, shown by the bench.
    provenance: dict[str, object]

    def probability(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        z = features @ self.weights + self.bias
        out: NDArray[np.float64] = 1.0 / (1.0 + np.exp(-z))
        return out

    @classmethod
    def load(cls, path: Path = VERIFIER_FILE) -> Verifier:
        raw = json.loads(path.read_text())
        if tuple(raw["features"]) != FEATURES:
            raise ValueError(f"{path}: fitted for features {raw['features']}, this code computes {FEATURES}")
        return cls(np.array(raw["weights"], dtype=np.float64), float(raw["bias"]),
                   float(raw["min_probability"]), dict(raw.get("provenance", {})))

    def dump(self, path: Path = VERIFIER_FILE) -> None:
        path.write_text(json.dumps({
            "features": list(FEATURES),
            "weights": [round(float(w), 6) for w in self.weights],
            "bias": round(self.bias, 6),
            "min_probability": round(self.min_probability, 6),
            "provenance": self.provenance,
        }, indent=2) + "\n")


class Matcher:
    """The decision for one candidate whose cosine is already known (stages 2 and 3)."""

    def __init__(self, threshold: float, verifier: Verifier | None = None,
                 min_probability: float | None = None) -> None:
        self.threshold = threshold
        self.verifier = verifier if verifier is not None else default_verifier()
        #: the fitted cut unless the configuration overrides it (`cache.semantic.min_probability`)
        self.min_probability = self.verifier.min_probability if min_probability is None else min_probability

    def accept(self, cached: str, incoming: str, cosine: float,
               cached_sig: Signature | None = None, incoming_sig: Signature | None = None) -> bool:
        if cosine < self.threshold:
            return False
        sig_a, sig_b = cached_sig or signature(cached), incoming_sig or signature(incoming)
        if not compatible(sig_a, sig_b, names_subset=True):
            return False
        features = pair_features(cached, incoming, cosine, sig_a, sig_b)
        return bool(self.verifier.probability(features) >= self.min_probability)


@lru_cache(maxsize=1)
def default_verifier() -> Verifier:
    return Verifier.load()


@lru_cache(maxsize=1)
def _default_matcher() -> tuple[Matcher, object]:
    from shared.embeddings.minilm import MiniLM
    from streamgate.config import SemanticCacheSettings

    settings = SemanticCacheSettings()
    return Matcher(settings.threshold, min_probability=settings.min_probability), MiniLM(settings.model_dir)


def semantic_match(cached: str, incoming: str) -> bool:
    """The default decision: may the answer cached for `cached` be served for `incoming`?

    Identical texts are the exact cache's business and always match. Loads the shipped MiniLM on first
    use (raises `ModelMissingError` when `make setup` has not installed it)."""
    if cached == incoming:
        return True
    matcher, model = _default_matcher()
    vectors = model.embed([cached, incoming])  # type: ignore[attr-defined]
    return matcher.accept(cached, incoming, float(vectors[0] @ vectors[1]))
