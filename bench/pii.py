"""PII scanning: streamgate's scanner against Microsoft Presidio on the same labeled texts.

Presidio runs its predefined pattern recognizers (e-mail, phone via `phonenumbers`, credit card with Luhn,
IBAN, US SSN, IP) on a blank spaCy pipeline: its default NER model cannot be downloaded here, and none of
these entity types needs NER. Scoring is entity-level: a prediction counts when it overlaps a gold span of
the same type. Presidio has no API-key recognizer, so API_KEY recall is reported for streamgate only and
the side-by-side totals cover the six shared types.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from bench.harness import write_result
from bench.pii_dataset import load
from shared.guardrails.pii import find_pii

Span = tuple[str, int, int]
SHARED = ("EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS")
_PRESIDIO_TYPES = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CREDIT_CARD",
                   "IBAN_CODE": "IBAN", "US_SSN": "US_SSN", "IP_ADDRESS": "IP_ADDRESS"}


def presidio_scanner() -> Callable[[str], list[Span]]:
    try:
        import spacy
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import SpacyNlpEngine
    except ImportError as exc:
        raise SystemExit("the PII comparison needs Presidio: `make bench` installs it") from exc
    logging.getLogger("tldextract").setLevel(logging.CRITICAL)  # no internet: it falls back to its snapshot

    class BlankSpacy(SpacyNlpEngine):  # type: ignore[misc, unused-ignore]
        def load(self) -> None:
            self.nlp = {"en": spacy.blank("en")}  # type: ignore[assignment, unused-ignore]

    engine = BlankSpacy(models=[{"lang_code": "en", "model_name": "blank"}])
    engine.load()
    registry = RecognizerRegistry()
    registry.load_predefined_recognizers(nlp_engine=engine)
    analyzer = AnalyzerEngine(nlp_engine=engine, registry=registry, supported_languages=["en"])
    wanted = list(_PRESIDIO_TYPES)

    def scan(text: str) -> list[Span]:
        return [(_PRESIDIO_TYPES[r.entity_type], r.start, r.end)
                for r in analyzer.analyze(text, language="en", entities=wanted)]
    return scan


def score(records: list[dict[str, Any]], predictions: list[list[Span]],
          types: tuple[str, ...]) -> dict[str, Any]:
    tp: Counter[str] = Counter()
    gold: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    for record, predicted in zip(records, predictions, strict=True):
        spans = [(e["type"], e["start"], e["end"]) for e in record["entities"] if e["type"] in types]
        matched: set[int] = set()
        for kind, start, end in predicted:
            if kind not in types:
                continue
            hit = next((i for i, (k, s, e) in enumerate(spans)
                        if i not in matched and k == kind and start < e and s < end), None)
            if hit is None:
                fp[kind] += 1
            else:
                matched.add(hit)
                tp[kind] += 1
        gold.update(k for k, _, _ in spans)
    per_type = {k: {"recall": tp[k] / gold[k] if gold[k] else None,
                    "precision": tp[k] / (tp[k] + fp[k]) if tp[k] + fp[k] else None,
                    "gold": gold[k], "false_positives": fp[k]} for k in types}
    total_tp, total_gold, total_fp = sum(tp.values()), sum(gold.values()), sum(fp.values())
    return {"recall": total_tp / total_gold, "precision": total_tp / max(total_tp + total_fp, 1),
            "per_type": per_type}


def _timed(scan: Callable[[str], list[Span]], texts: list[str],
           repeats: int) -> tuple[list[list[Span]], float]:
    best = float("inf")
    out: list[list[Span]] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = [scan(t) for t in texts]
        best = min(best, time.perf_counter() - t0)
    return out, len(texts) / best


def main() -> dict[str, Any]:
    records = load()
    texts = [r["text"] for r in records]
    ours, ours_rate = _timed(find_pii, texts, repeats=5)
    theirs, theirs_rate = _timed(presidio_scanner(), texts, repeats=2)
    ours_shared, theirs_shared = score(records, ours, SHARED), score(records, theirs, SHARED)
    ours_all = score(records, ours, (*SHARED, "API_KEY"))
    result = {"texts": len(texts), "streamgate_texts_per_s": ours_rate, "presidio_texts_per_s": theirs_rate,
              "speedup": ours_rate / theirs_rate, "streamgate": ours_shared, "presidio": theirs_shared,
              "streamgate_with_api_keys": ours_all}
    table = [("labeled texts (bench/data/pii_labeled.jsonl)", f"{len(texts)}"),
             ("streamgate scanner", f"{ours_rate:,.0f} texts/s"),
             ("Presidio pattern recognizers", f"{theirs_rate:,.0f} texts/s"),
             ("speed ratio streamgate/Presidio", f"{ours_rate / theirs_rate:.1f}x"),
             ("recall, 6 shared types: streamgate / Presidio",
              f"{ours_shared['recall']:.3f} / {theirs_shared['recall']:.3f}"),
             ("precision, 6 shared types: streamgate / Presidio",
              f"{ours_shared['precision']:.3f} / {theirs_shared['precision']:.3f}")]
    for kind in SHARED:
        a, b = ours_shared["per_type"][kind], theirs_shared["per_type"][kind]
        table.append((f"recall {kind} (n={a['gold']}): streamgate / Presidio",
                      f"{a['recall']:.3f} / {b['recall']:.3f}"))
    api = ours_all["per_type"]["API_KEY"]
    table.append((f"recall API_KEY (n={api['gold']}): streamgate / Presidio",
                  f"{api['recall']:.3f} / not covered"))
    write_result("pii", result, table)
    for k, v in table:
        print(f"{k:<55} {v}")
    return result
