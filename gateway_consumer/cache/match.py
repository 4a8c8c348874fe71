"""The semantic cache's decision: may the answer cached for one prompt be served for another?

Stages, cheapest first, each only for what passed the one before:
1. cosine similarity of the MiniLM sentence vectors (the faiss lookup) at least `threshold`;
2. `verify.conflicting`: both texts name numbers and they differ ("top 5" / "top 3"), one is negated and
   the other not, or the same words come in another order ("miles to km" / "km to miles"). Those never
   ask the same thing, and embeddings score them alike;
3. two judges, each fitted for precision >= 0.995 on public data it was not fitted on; a candidate is
   served when either is confident:
   a. the overlap model (overlap.py): the strict word rules, then a logistic model over word-overlap
      features of the pair. Microseconds; confident on short reworded questions (FAQ-style prompts);
   b. the cross-encoder (shared/embeddings/pair_encoder.py), only when (a) refused: MiniLM reads both
      texts in one pass and scores whether they mean the same. Milliseconds, so the cache runs it on the
      embedder's thread, for all of a lookup's candidates in one call, shed like an embedding when that
      thread is behind. It is what tells long near-identical sentences apart: two vectors computed apart
      cannot see the one clause or detail that differs ("... hit Texas or Louisiana by Monday night" /
      "... hits Louisiana Monday night"); attention across both texts can.

Neither judge alone serves both kinds of traffic (docs/semantic-cache.md): on public news-sentence
paraphrases the overlap model reaches its precision by serving 0.3% of pairs and the cross-encoder ~5%;
on FAQ-style questions the cross-encoder's cut, set at the top of its scale by the news data, refuses
most rewordings the overlap model serves.

`semantic_match(cached, incoming)` is the whole default decision on two strings (it embeds them with
the shipped MiniLM); the cache calls `Matcher.screen` and `Matcher.quick` with the vectors it already
has, then `Matcher.judge` for what is left.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from gateway_consumer.cache.overlap import OverlapModel, default_overlap_model, overlap_accepts
from gateway_consumer.cache.verify import Signature, conflicting, signature

ADAPTER_FILE = Path(__file__).resolve().parent / "pair_adapter.npz"


class PairScorer(Protocol):
    """What stage 3 needs of a cross-encoder (shared.embeddings.pair_encoder.PairEncoder)."""

    provenance: dict[str, Any]

    def logits(self, pairs: list[tuple[str, str]]) -> NDArray[np.float32]: ...


class Matcher:
    """The decision for candidates whose cosine is already known."""

    def __init__(self, threshold: float, scorer: PairScorer | None, min_probability: float | None = None,
                 overlap: OverlapModel | None = None) -> None:
        """`scorer` None: the overlap model alone decides (`cache.semantic.cross_encoder: false`)."""
        self.threshold, self.scorer = threshold, scorer
        self.overlap = overlap if overlap is not None else default_overlap_model()
        fitted = scorer.provenance.get("min_probability") if scorer is not None else 1.0
        if min_probability is None and fitted is None:
            raise ValueError("the pair adapter records no fitted cut (min_probability): refit it, or set "
                             "cache.semantic.min_probability")
        #: the cross-encoder's fitted cut unless the configuration overrides it
        #: (`cache.semantic.min_probability`)
        self.min_probability = float(min_probability if min_probability is not None else fitted)  # type: ignore[arg-type]
        self._min_logit = _logit(self.min_probability)

    def screen(self, cached: str, incoming: str, cosine: float, cached_sig: Signature | None = None,
               incoming_sig: Signature | None = None) -> bool:
        """Stages 1 and 2: microseconds, no model call."""
        if cosine < self.threshold:
            return False
        return not conflicting(cached_sig or signature(cached), incoming_sig or signature(incoming))

    def quick(self, cached: str, incoming: str, cosine: float, cached_sig: Signature | None = None,
              incoming_sig: Signature | None = None) -> bool:
        """Stage 3a, the overlap model: microseconds, no model call."""
        return overlap_accepts(self.overlap, cached, incoming, cosine, cached_sig, incoming_sig)

    def judge(self, incoming: str, cached: list[str]) -> list[bool]:
        """Stage 3b for each candidate the overlap model refused: one cross-encoder call for all."""
        if not cached or self.scorer is None:
            return [False] * len(cached)
        scores = self.scorer.logits([(text, incoming) for text in cached])
        return [self.judge_logit(float(s)) for s in scores]

    def judge_logit(self, logit: float) -> bool:
        """The cut on one cross-encoder score (compared as a logit: a saturated sigmoid would round the
        best scores together)."""
        return logit >= self._min_logit

    def accept(self, cached: str, incoming: str, cosine: float) -> bool:
        """The whole decision for one candidate (the cache batches stage 3b; this is for evaluation)."""
        if not self.screen(cached, incoming, cosine):
            return False
        return self.quick(cached, incoming, cosine) or self.judge(incoming, [cached])[0]


def _logit(probability: float) -> float:
    if probability >= 1.0:
        return math.inf
    return math.log(probability / (1.0 - probability))


@lru_cache(maxsize=4)
def default_scorer(model_dir: Path | None = None) -> PairScorer:
    """The shipped cross-encoder: MiniLM from `model_dir` (default: the one `make setup` installs) with
    the adapter in this package (raises `ModelMissingError` without the model)."""
    from shared.embeddings.minilm import DEFAULT_MODEL_DIR
    from shared.embeddings.pair_encoder import PairEncoder

    return PairEncoder(ADAPTER_FILE, model_dir or DEFAULT_MODEL_DIR)


@lru_cache(maxsize=1)
def _default_matcher() -> tuple[Matcher, Any]:
    from shared.embeddings.minilm import MiniLM
    from streamgate.config import SemanticCacheSettings

    settings = SemanticCacheSettings()
    matcher = Matcher(settings.threshold, default_scorer(settings.model_dir), settings.min_probability)
    return matcher, MiniLM(settings.model_dir, int8=settings.int8)


def semantic_match(cached: str, incoming: str) -> bool:
    """The default decision: may the answer cached for `cached` be served for `incoming`?

    Identical texts are the exact cache's business and always match. Loads the shipped MiniLM and the
    cross-encoder on first use (raises `ModelMissingError` when `make setup` has not installed it)."""
    if cached == incoming:
        return True
    matcher, model = _default_matcher()
    vectors = model.embed([cached, incoming])
    return matcher.accept(cached, incoming, float(vectors[0] @ vectors[1]))
