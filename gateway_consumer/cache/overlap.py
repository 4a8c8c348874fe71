"""The cheap judge of a semantic-cache candidate: a logistic model over word-overlap features of the pair.

Features: cosine, word and bigram overlap, how much of each text the other covers, length ratio, words and
names only one side has, length; weights and acceptance probability are fitted on the dev split
(`python -m bench.public_paraphrases fit`) and shipped beside this file (`overlap_model.json`). It needs
only the two texts and their cosine, so it costs microseconds; it is confident on short reworded
questions (FAQ-style prompts) and rarely on long sentences that differ by a clause, where the
cross-encoder (match.py) decides.
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

MODEL_FILE = Path(__file__).resolve().parent / "overlap_model.json"
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
class OverlapModel:
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
    def load(cls, path: Path = MODEL_FILE) -> OverlapModel:
        raw = json.loads(path.read_text())
        if tuple(raw["features"]) != FEATURES:
            raise ValueError(f"{path}: fitted for features {raw['features']}, this code computes {FEATURES}")
        return cls(np.array(raw["weights"], dtype=np.float64), float(raw["bias"]),
                   float(raw["min_probability"]), dict(raw.get("provenance", {})))

    def dump(self, path: Path = MODEL_FILE) -> None:
        path.write_text(json.dumps({
            "features": list(FEATURES),
            "weights": [round(float(w), 6) for w in self.weights],
            "bias": round(self.bias, 6),
            "min_probability": round(self.min_probability, 6),
            "provenance": self.provenance,
        }, indent=2) + "\n")


@lru_cache(maxsize=1)
def default_overlap_model() -> OverlapModel:
    return OverlapModel.load()


def overlap_accepts(model: OverlapModel, cached: str, incoming: str, cosine: float,
                    cached_sig: Signature | None = None, incoming_sig: Signature | None = None) -> bool:
    """The cheap judge: the strict word rules (one side's names may include the other's), then the model
    at its fitted cut."""
    sig_a, sig_b = cached_sig or signature(cached), incoming_sig or signature(incoming)
    if not compatible(sig_a, sig_b, names_subset=True):
        return False
    features = pair_features(cached, incoming, cosine, sig_a, sig_b)
    return bool(model.probability(features) >= model.min_probability)
