"""Semantic cache quality and cost: precision and hit rate on public paraphrase data (a dev split the
decision was fitted on and a held-out split it never saw), on the project's own labeled pairs and on
simulated traffic; the cost of the decision per lookup; the embedder's throughput.

(0) public pairs (bench/public_paraphrases.py, MRPC): per split, the shipped decision
    (`match.semantic_match`: cosine gate, conflict rules, cross-encoder) against, in the same run,
    cosine 0.85 + word rules (the decision two versions back) and cosine alone. Identical texts are
    exact-cache hits, counted apart. The cross-encoder's adapter was fitted on most of the dev split and
    its cut chosen on the rest; the held-out split was never used.
(1) pairs (bench/data/paraphrases.jsonl, part of the adapter's fit): at the configured threshold.
(2) traffic: 3,000 FAQ-style questions drawn with a Zipf popularity over (intent, slots) and a random
    phrasing each time; exact cache first, then the semantic cache (same code as the dispatcher). A hit is
    correct when the cached question had the same intent and slots. Reference point (the issue's seed):
    about 20% hit rate at 99% precision on RAG-style traffic.
(3) embeddings/s at batch 1 and batch 32: the shipped encoder (onnxruntime) against the numpy encoder it
    replaced (bench/minilm_numpy.py), one thread each, same run.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from bench import public_paraphrases as public
from bench.harness import write_result
from bench.paraphrase_dataset import ENTITIES, INTENTS, NUMBERS, PLACES, load
from gateway_consumer.cache.exact import CachedAnswer
from gateway_consumer.cache.match import Matcher, default_scorer
from gateway_consumer.cache.semantic import BatchingEmbedder, SemanticCache
from gateway_consumer.cache.verify import compatible, signature
from gateway_consumer.providers import ProviderReply
from shared.embeddings.minilm import MiniLM
from shared.traffic import workload
from streamgate.config import SemanticCacheSettings

TRAFFIC = 3000


def _matcher(threshold: float) -> Matcher:
    settings = SemanticCacheSettings()
    return Matcher(threshold, default_scorer(settings.model_dir), settings.min_probability)


def decide_all(matcher: Matcher, pairs: list[tuple[str, str]], cosines: Any
               ) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """(accepted by the overlap model, accepted by the cross-encoder) over many pairs, each judge on
    every pair that passes stages 1-2, the cross-encoder batched (the cache judges one lookup's
    candidates per call and skips the cross-encoder when the overlap model accepted; batching and
    scoring both here only make the benchmark faster and show each judge alone)."""
    quick, deep = np.zeros(len(pairs), dtype=bool), np.zeros(len(pairs), dtype=bool)
    scorer = matcher.scorer
    assert scorer is not None, "the benchmark measures the shipped decision, cross-encoder included"
    screened = [i for i, ((a, b), c) in enumerate(zip(pairs, cosines, strict=True))
                if a != b and matcher.screen(a, b, float(c))]
    for i in screened:
        quick[i] = matcher.quick(*pairs[i], float(cosines[i]))
    for start in range(0, len(screened), 16):
        chunk = screened[start:start + 16]
        scores = scorer.logits([pairs[i] for i in chunk])
        deep[chunk] = [matcher.judge_logit(float(x)) for x in scores]
    return quick, deep


def pair_scores(model: MiniLM, threshold: float) -> dict[str, Any]:
    rows = load()
    a = model.embed([r["a"] for r in rows])
    b = model.embed([r["b"] for r in rows])
    sims = (a * b).sum(1)
    quick, deep = decide_all(_matcher(threshold), [(r["a"], r["b"]) for r in rows], sims)
    verified = quick | deep
    rules = np.array([compatible(signature(r["a"]), signature(r["b"])) for r in rows])
    same = np.array([r["same"] for r in rows])
    out: dict[str, Any] = {"pairs": len(rows), "threshold": threshold}
    for name, hit in (("embedding_only", sims >= threshold), ("rules", (sims >= threshold) & rules),
                      ("verified", verified)):
        tp, fp = int((hit & same).sum()), int((hit & ~same).sum())
        out[name] = {
            "recall": tp / int(same.sum()),
            "precision": tp / max(tp + fp, 1),
            "false_hits": fp,
            "false_hits_by_kind": dict(
                Counter(r["kind"] for r, h in zip(rows, hit, strict=True) if h and not r["same"])
            ),
        }
    return out


def public_scores(model: MiniLM, threshold: float) -> dict[str, Any]:
    """Both public splits through the shipped decision and, in the same run, cosine 0.85 + word rules
    and cosine alone; plus the cheapest cosine threshold that would reach 0.99 precision on its own
    (None when none does)."""
    if not public.available():
        return {"missing": f"no public pairs in {public.DATA_DIR}: python -m bench.public_paraphrases setup"}
    matcher = _matcher(threshold)
    source = json.loads((public.DATA_DIR / "source.json").read_text())
    adapter = default_scorer(SemanticCacheSettings().model_dir).provenance
    out: dict[str, Any] = {"corpus": source.get("corpus", "?"), "adapter": adapter,
                           "overlap_model": matcher.overlap.provenance}
    for split in public.SPLITS:
        pairs = public.load(split)
        va, vb = public.vectors(model, pairs)
        cos = (va * vb).sum(1)
        same = np.array([p["same"] for p in pairs])
        quick, deep = decide_all(matcher, [(p["a"], p["b"]) for p in pairs], cos)
        judged = {name: {(p["a"], p["b"]): bool(x) for p, x in zip(pairs, hit, strict=True)}
                  for name, hit in (("shipped", quick | deep), ("overlap", quick), ("cross", deep))}
        out[split] = {
            **{key: public.score(pairs, va, vb, lambda a, b, c, d=judged[name]: d[(a, b)])
               for key, name in (("shipped", "shipped"), ("overlap_model_alone", "overlap"),
                                 ("cross_encoder_alone", "cross"))},
            "before_cosine_0.85_rules": public.score(
                pairs, va, vb, lambda a, b, c: c >= 0.85 and compatible(signature(a), signature(b))),
            "cosine_only": public.score(pairs, va, vb, lambda a, b, c: c >= threshold),
            "cosine_threshold_for_0.99": _cosine_for(cos, same, 0.99),
        }
    return out


def _cosine_for(cos: Any, same: Any, target: float) -> float | None:
    order = np.argsort(-cos)
    precision = np.cumsum(same[order]) / np.arange(1, len(cos) + 1)
    ok = np.nonzero(precision >= target)[0]
    return None if len(ok) == 0 else round(float(cos[order][ok[-1]]), 4)


def decision_cost(model: MiniLM, threshold: float) -> dict[str, float]:
    """Per candidate that passes the cosine gate (held-out split, or the own set without it), on one
    thread: the cross-encoder (both orders), the overlap model (with its word rules) and the word rules
    alone, same run."""
    pairs = public.load("heldout") if public.available() else load()
    va, vb = public.vectors(model, pairs) if public.available() else (
        model.embed([p["a"] for p in pairs]), model.embed([p["b"] for p in pairs]))
    cands = [(p["a"], p["b"], float(x @ y)) for p, x, y in zip(pairs, va, vb, strict=True)
             if float(x @ y) >= threshold] or [(p["a"], p["b"], 1.0) for p in pairs]
    cands = cands[:200]
    matcher = _matcher(threshold)
    matcher.accept(*cands[0])  # warm

    def per_candidate(fn: Any) -> float:
        t0 = time.perf_counter()
        for a, b, c in cands:
            fn(a, b, c)
        return (time.perf_counter() - t0) / len(cands) * 1e6

    with threadpool_limits(1):
        return {"candidates": len(cands),
                "cross_encoder_us_per_candidate": per_candidate(lambda a, b, c: matcher.judge(b, [a])),
                "overlap_model_us_per_candidate": per_candidate(matcher.quick),
                "rules_only_us_per_candidate": per_candidate(
                    lambda a, b, c: compatible(signature(a), signature(b)))}


def traffic(model: MiniLM, threshold: float, seed: int = 11) -> dict[str, Any]:
    rng = random.Random(seed)
    # every distinct question: an intent and the slots its phrasings use; popularity is Zipf (s = 1)
    distinct = sorted(
        {
            (
                i,
                e if "{E}" in t["p"][0] else "",
                p if "{P}" in t["p"][0] else "",
                n if "{N}" in t["p"][0] else "",
            )
            for i, t in enumerate(INTENTS)
            for e in ENTITIES
            for p in PLACES
            for n in NUMBERS
        }
    )
    rng.shuffle(distinct)
    weights = [1 / (rank + 1) for rank in range(len(distinct))]
    cache = SemanticCache(threshold, ttl_s=3600, max_entries_per_scope=100_000, matcher=_matcher(threshold))
    exact: dict[str, tuple[int, str, str, str]] = {}
    counts: Counter[str] = Counter()
    queries = []
    for _ in range(TRAFFIC):
        combo = rng.choices(distinct, weights=weights)[0]
        intent, e, p, n = combo
        text = rng.choice(INTENTS[intent]["p"]).replace("{E}", e).replace("{P}", p).replace("{N}", n)
        queries.append((combo, text))
    vectors = model.embed([t for _, t in queries])
    reply = ProviderReply("answer", "stop", 10, 10)
    lookup_s: list[float] = []

    async def run() -> None:  # the dispatcher's code path; the cross-encoder runs inline here
        for (combo, text), vector in zip(queries, vectors, strict=True):
            if text in exact:
                counts["exact_hits"] += 1
                continue
            t0 = time.perf_counter()
            hit = await cache.lookup("scope", text, vector)
            lookup_s.append(time.perf_counter() - t0)
            if hit is not None:
                counts["semantic_hits"] += 1
                counts["semantic_correct"] += int(hit.provider == repr(combo))
                continue
            exact[text] = combo
            cache.add("scope", text, vector,
                      CachedAnswer(reply, repr(combo), "m", "us", 0, time.monotonic() + 3600))

    asyncio.run(run())
    hits = counts["exact_hits"] + counts["semantic_hits"]
    return {
        "queries": TRAFFIC,
        "question_universe": len(distinct),
        "distinct_questions_asked": len({c for c, _ in queries}),
        "exact_hit_rate": counts["exact_hits"] / TRAFFIC,
        "semantic_hit_rate": counts["semantic_hits"] / TRAFFIC,
        "hit_rate": hits / TRAFFIC,
        "semantic_precision": counts["semantic_correct"] / max(counts["semantic_hits"], 1),
        "rejected_by_verification": cache.rejected_by_verify,
        "lookup_us_p50": float(np.percentile(lookup_s, 50) * 1e6),
        "lookup_us_p99": float(np.percentile(lookup_s, 99) * 1e6),
    }


def embed_rates(model: MiniLM, other: MiniLM, model_dir: Path) -> dict[str, float]:
    """On one thread, as the dispatcher's embedder runs: the shipped encoder against the other variant
    (int8 / float32) and the numpy encoder the onnxruntime one replaced (bench/minilm_numpy.py), same
    texts, same run. Mixed lengths: the demo workload's cache-eligible support prompts (questions and
    50-word prompts), batches of 64, grouped by length (now) against padded to the batch's longest
    (before), same run."""
    from bench.minilm_numpy import NumpyMiniLM

    texts = [f"How do I configure the gateway for team number {i} with fallback routing?" for i in range(256)]
    mixed = [r.messages[-1].content for r in workload.requests(4000, seed=3) if r.team == "support"
             and len(r.messages[-1].content) <= SemanticCacheSettings().max_chars][:256]
    out = {}
    numpy_model = NumpyMiniLM(model_dir)
    with threadpool_limits(1):
        for prefix, encoder in (("", model), ("other_", other), ("numpy_", numpy_model)):
            encoder.embed(texts[:2])  # warm: first-run allocations are not the steady rate
            for batch in (1, 32):
                t0 = time.perf_counter()
                for i in range(0, 128, batch):
                    encoder.embed(texts[i : i + batch])
                out[f"{prefix}embeddings_per_s_batch_{batch}"] = 128 / (time.perf_counter() - t0)
        for name, embed in (("grouped", model.embed), ("padded", lambda b: _padded(model, b)),
                            ("other_grouped", other.embed)):
            t0 = time.perf_counter()
            for i in range(0, len(mixed), 64):
                embed(mixed[i : i + 64])
            out[f"mixed_embeddings_per_s_{name}"] = len(mixed) / (time.perf_counter() - t0)
    return out


#: New cache-eligible prompts per second offered to the embedder in `shedding` (each encoder, each rate).
SHED_RATES = (100, 200, 400)
SHED_S = 8.0


def shedding(model: MiniLM, rate: float, seconds: float = SHED_S) -> dict[str, float]:
    """The dispatcher's embedder (BatchingEmbedder, shipped settings) offered `rate` prompts per second
    that are all new (the demo's support prompts, each made unique, so its memo never answers): the share
    it sheds (those lookups skip the cache) and how long the others waited for their vector."""
    settings = SemanticCacheSettings()
    asked = (r.messages[-1].content for r in workload.requests(60_000, seed=5) if r.team == "support")
    prompts = list(dict.fromkeys(t for t in asked if len(t) <= settings.max_chars))
    model.embed(prompts[:8])  # warm

    async def offer() -> dict[str, float]:
        embedder = BatchingEmbedder.from_settings(model, settings)
        waits: list[float] = []
        count = int(rate * seconds)

        async def one(text: str) -> None:
            t0 = time.perf_counter()
            if await embedder.embed(text) is not None:
                waits.append(time.perf_counter() - t0)

        tasks, start = [], time.perf_counter()
        for i in range(count):
            if (delay := start + i / rate - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(f"{prompts[i % len(prompts)]} #{i}")))
        await asyncio.gather(*tasks)
        return {"shed_share": 1 - len(waits) / count,
                "wait_p50_ms": float(np.percentile(waits, 50) * 1e3) if waits else 0.0,
                "wait_p99_ms": float(np.percentile(waits, 99) * 1e3) if waits else 0.0}

    return asyncio.run(offer())


def encoder_comparison(other: MiniLM, threshold: float) -> dict[str, Any]:
    """The shipped decision with the other encoder variant's vectors, same run: what int8 costs."""
    out: dict[str, Any] = {"variant": other.variant, "pairs": pair_scores(other, threshold)["verified"],
                           "traffic": traffic(other, threshold)}
    if public.available():
        out["heldout"] = public_scores(other, threshold)["heldout"]["shipped"]
    return out


def _public_rows(opened: dict[str, Any]) -> list[tuple[str, str]]:
    if "missing" in opened:
        return [("public pairs", opened["missing"])]
    adapter = opened["adapter"]
    rows = [(f"{opened['corpus']} calibration fifth of dev (not trained on; the cut was chosen here): "
             "hit rate / precision at the cut",
             f"{adapter.get('calibration_hit_rate', 0):.1%} / {adapter.get('calibration_precision', 0):.3f}"
             f" (cut P >= {adapter.get('min_probability')})")]
    for split, label in (("dev", "dev (fitted and calibrated on)"), ("heldout", "held-out (never used)")):
        r = opened[split]
        new, old, raw = r["shipped"], r["before_cosine_0.85_rules"], r["cosine_only"]
        rows += [
            (f"{opened['corpus']} {label}: pairs, exact-match pairs (counted apart)",
             f"{new['pairs']}, {new['exact_hits']}"),
            (f"{opened['corpus']} {label}: shipped decision, semantic hit rate / precision / false hits",
             f"{new['hit_rate']:.1%} / {new['precision']:.3f} / {new['false_hits']}"),
            (f"{opened['corpus']} {label}: the judges alone, overlap model / cross-encoder, "
             "hit rate / precision",
             f"{r['overlap_model_alone']['hit_rate']:.1%} / {r['overlap_model_alone']['precision']:.3f}; "
             f"{r['cross_encoder_alone']['hit_rate']:.1%} / {r['cross_encoder_alone']['precision']:.3f}"),
            (f"{opened['corpus']} {label}: cosine 0.85 + word rules, hit rate / precision",
             f"{old['hit_rate']:.1%} / {old['precision']:.3f}"),
            (f"{opened['corpus']} {label}: cosine alone, hit rate / precision; cosine for 0.99 alone",
             f"{raw['hit_rate']:.1%} / {raw['precision']:.3f}; {r['cosine_threshold_for_0.99']}"),
        ]
    return rows


def _encoder_rows(variant: str, flow: dict[str, Any], verified: dict[str, Any], opened: dict[str, Any],
                  versus: dict[str, Any], rates: dict[str, float]) -> list[tuple[str, str]]:
    """The shipped encoder against the other variant: speed, and what the cache decides with each."""
    pair = f"{variant} (shipped) vs {versus['variant']}"
    keys = ("{}embeddings_per_s_batch_1", "{}embeddings_per_s_batch_32", "mixed_embeddings_per_s_{}grouped")
    speeds = [" / ".join(f"{rates[k.format(p)]:,.0f}" for k in keys) for p in ("", "other_")]
    rows = [(f"encoder {pair}, one thread: embeddings/s batch 1 / 32 / demo prompts", " vs ".join(speeds)),
            (f"encoder {pair}: traffic hit rate (semantic), semantic precision",
             f"{flow['hit_rate']:.1%} ({flow['semantic_hit_rate']:.1%}), {flow['semantic_precision']:.3f} vs "
             f"{versus['traffic']['hit_rate']:.1%} ({versus['traffic']['semantic_hit_rate']:.1%}), "
             f"{versus['traffic']['semantic_precision']:.3f}"),
            (f"encoder {pair}: labeled pairs recall / precision",
             f"{verified['recall']:.3f} / {verified['precision']:.3f} vs "
             f"{versus['pairs']['recall']:.3f} / {versus['pairs']['precision']:.3f}")]
    if "heldout" in versus and "heldout" in opened:
        mine, theirs = opened["heldout"]["shipped"], versus["heldout"]
        rows.append((f"encoder {pair}: {opened['corpus']} held-out semantic hits / precision",
                     f"{mine['semantic_hits']} / {mine['precision']:.3f} vs "
                     f"{theirs['semantic_hits']} / {theirs['precision']:.3f}"))
    return rows


def _padded(model: MiniLM, texts: list[str]) -> Any:
    """The embedder before length grouping: one batch padded to its longest text."""
    encodings = model.tokenizer.encode_batch(texts)
    length = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(texts), length), dtype=np.int64)
    mask = np.zeros((len(texts), length), dtype=np.int64)
    for row, e in enumerate(encodings):
        ids[row, : len(e.ids)], mask[row, : len(e.ids)] = e.ids, 1
    return model.encode_padded(ids, mask)


def main() -> dict[str, Any]:
    settings = SemanticCacheSettings()
    model = MiniLM(settings.model_dir, int8=settings.int8)
    other = MiniLM(settings.model_dir, int8=not settings.int8)
    opened = public_scores(model, settings.threshold)
    cost = decision_cost(model, settings.threshold)
    pairs = pair_scores(model, settings.threshold)
    flow = traffic(model, settings.threshold)
    versus = encoder_comparison(other, settings.threshold)
    rates = embed_rates(model, other, settings.model_dir)
    shed = {f"{m.variant}_{r}": shedding(m, r) for r in SHED_RATES for m in (model, other)}
    result = {"encoder": model.variant, "public": opened, "decision_cost": cost, "pairs": pairs,
              "traffic": flow, "other_encoder": versus, "new_prompts_offered": shed, **rates}
    speedup = rates["mixed_embeddings_per_s_grouped"] / rates["mixed_embeddings_per_s_padded"]
    v, raw, rules = pairs["verified"], pairs["embedding_only"], pairs["rules"]
    table = [*_public_rows(opened), (
        "per candidate, one thread: cross-encoder (both orders) / overlap model / word rules only (same run)",
        f"{cost['cross_encoder_us_per_candidate']:,.0f} / {cost['overlap_model_us_per_candidate']:.0f} / "
        f"{cost['rules_only_us_per_candidate']:.0f} µs"
        f" ({cost['candidates']} candidates)"), (
        "traffic: lookup (faiss search + decision) p50 / p99",
        f"{flow['lookup_us_p50']:.0f} / {flow['lookup_us_p99']:.0f} µs"),
        ("labeled pairs (bench/data/paraphrases.jsonl)", f"{pairs['pairs']}"),
        ("threshold (cosine, all-MiniLM-L6-v2)", f"{settings.threshold}"),
        ("pairs: precision / recall, embedding only", f"{raw['precision']:.3f} / {raw['recall']:.3f}"),
        ("pairs: precision / recall, cosine + word rules (before)",
         f"{rules['precision']:.3f} / {rules['recall']:.3f}"),
        ("pairs: precision / recall, shipped decision (these pairs are in the adapter's fit)",
         f"{v['precision']:.3f} / {v['recall']:.3f}"),
        (
            "traffic: hit rate (exact + semantic)",
            f"{flow['hit_rate']:.1%} ({flow['exact_hit_rate']:.1%} + {flow['semantic_hit_rate']:.1%})",
        ),
        ("traffic: semantic hit precision", f"{flow['semantic_precision']:.3f}"),
        *_encoder_rows(model.variant, flow, pairs["verified"], opened, versus, rates),
        *((f"embedder offered {r} new prompts/s for {SHED_S:.0f} s: shed, wait p50 / p99, "
           f"{model.variant} vs {other.variant}",
           " vs ".join("{shed_share:.1%}, {wait_p50_ms:.0f} / {wait_p99_ms:.0f} ms".format(**shed[f"{v}_{r}"])
                       for v in (model.variant, other.variant))) for r in SHED_RATES),
        (
            "embeddings/s, batch 1 / batch 32, one thread: onnxruntime (shipped) vs numpy (before), same run",
            "{embeddings_per_s_batch_1:,.0f} / {embeddings_per_s_batch_32:,.0f} vs "
            "{numpy_embeddings_per_s_batch_1:,.0f} / {numpy_embeddings_per_s_batch_32:,.0f}".format(**rates)
            + f" ({rates['embeddings_per_s_batch_1'] / rates['numpy_embeddings_per_s_batch_1']:.1f}x"
            " at batch 1)",
        ),
        (
            "demo prompts (mixed lengths), batch 64: grouped by length / padded to longest (before)",
            f"{rates['mixed_embeddings_per_s_grouped']:,.0f} / {rates['mixed_embeddings_per_s_padded']:,.0f}"
            f" embeddings/s ({speedup:.1f}x)",
        ),
    ]
    write_result("semantic-cache", result, table)
    for k, val in table:
        print(f"{k:<48} {val}")
    return result
