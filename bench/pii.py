"""PII scanning: streamgate's scanner against Microsoft Presidio on the same labeled texts, per split.

Pattern types (bench/data/pii_{dev,heldout}.jsonl): Presidio runs its predefined pattern recognizers on a
blank spaCy pipeline (none of these types needs NER). Names, places, organisations
(bench/data/ner_{dev,heldout}.jsonl): Presidio's analyzer runs on the same spaCy model the NER detector
loads. Scoring is entity-level: a prediction counts when it overlaps a gold span of the same type.
`dev` is the split the rules were tuned on; `heldout` was never tuned on.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from bench.harness import write_result
from bench.pii_dataset import NER_TYPES, load, load_ner
from shared.guardrails.pii import find_pii

Span = tuple[str, int, int]
SHARED = ("EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS")
_PRESIDIO_TYPES = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CREDIT_CARD",
                   "IBAN_CODE": "IBAN", "US_SSN": "US_SSN", "IP_ADDRESS": "IP_ADDRESS"}


def _presidio_analyzer(nlp_loader: Callable[[], Any], model_name: str) -> Any:
    try:
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
    except ImportError as exc:
        raise SystemExit("the PII comparison needs Presidio: `make bench` installs it") from exc
    logging.getLogger("tldextract").setLevel(logging.CRITICAL)  # no internet: it falls back to its snapshot
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)

    class LocalSpacy(SpacyNlpEngine):  # type: ignore[misc, unused-ignore]
        def load(self) -> None:
            self.nlp = {"en": nlp_loader()}  # type: ignore[assignment, unused-ignore]

    # ORGANIZATION is on Presidio's default ignore list; the comparison asks for it explicitly
    engine = LocalSpacy(models=[{"lang_code": "en", "model_name": model_name}],
                        ner_model_configuration=NerModelConfiguration(labels_to_ignore=[]))
    engine.load()
    registry = RecognizerRegistry()
    registry.load_predefined_recognizers(nlp_engine=engine)
    return AnalyzerEngine(nlp_engine=engine, registry=registry, supported_languages=["en"])


def presidio_scanner() -> Callable[[str], list[Span]]:
    """Presidio's pattern recognizers (phone via `phonenumbers`, card with Luhn, IBAN, SSN, IP, e-mail) on a
    blank spaCy pipeline: none of these types needs NER."""
    import spacy

    analyzer = _presidio_analyzer(lambda: spacy.blank("en"), "blank")
    wanted = list(_PRESIDIO_TYPES)

    def scan(text: str) -> list[Span]:
        return [(_PRESIDIO_TYPES[r.entity_type], r.start, r.end)
                for r in analyzer.analyze(text, language="en", entities=wanted)]
    return scan


def presidio_ner() -> Callable[[str], list[Span]]:
    """Presidio's full analyzer on the same spaCy model the NER detector loads."""
    from shared.guardrails.ner import _model

    analyzer = _presidio_analyzer(_model, "en_core_web_sm")
    wanted = list(NER_TYPES)

    def scan(text: str) -> list[Span]:
        found = analyzer.analyze(text, language="en", entities=wanted)
        return [(r.entity_type, r.start, r.end) for r in found]
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


def _ms_per_kb(scan: Callable[[str], list[Span]], texts: list[str], repeats: int) -> float:
    _, rate = _timed(scan, texts, repeats)
    kb = sum(len(t.encode()) for t in texts) / 1024
    return 1000 * len(texts) / rate / kb


def _pattern_rows(split: str, records: list[dict[str, Any]], ours: list[list[Span]],
                  theirs: list[list[Span]]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    a, b = score(records, ours, SHARED), score(records, theirs, SHARED)
    rows = [(f"{split}: texts / recall / precision, 6 types: streamgate vs Presidio",
             f"{len(records)} / {a['recall']:.3f} / {a['precision']:.3f}"
             f" vs {b['recall']:.3f} / {b['precision']:.3f}")]
    for kind in SHARED:
        x, y = a["per_type"][kind], b["per_type"][kind]
        rows.append((f"{split} {kind} (n={x['gold']}): recall / precision, streamgate vs Presidio",
                     f"{x['recall']:.3f} / {x['precision']:.3f}"
                     f" vs {y['recall']:.3f} / {_fmt(y['precision'])}"))
    return {"streamgate": a, "presidio": b}, rows


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main() -> dict[str, Any]:
    result: dict[str, Any] = {}
    table: list[tuple[str, str]] = []
    presidio = presidio_scanner()
    all_texts: list[str] = []
    for split in ("dev", "heldout"):
        records = load(split)
        texts = [r["text"] for r in records]
        all_texts += texts
        ours = [find_pii(t) for t in texts]
        theirs = [presidio(t) for t in texts]
        result[split], rows = _pattern_rows(split, records, ours, theirs)
        table += rows
    _, ours_rate = _timed(find_pii, all_texts, repeats=3)
    _, theirs_rate = _timed(presidio, all_texts, repeats=1)
    kb = sum(len(t.encode()) for t in all_texts) / 1024 / len(all_texts)
    load_1m = os.getloadavg()[0]
    result |= {"load_average_1m": load_1m, "streamgate_texts_per_s": ours_rate,
               "presidio_texts_per_s": theirs_rate, "speedup": ours_rate / theirs_rate, "mean_text_kb": kb}
    table += [("pattern scanner: streamgate / Presidio (both splits)",
               f"{ours_rate:,.0f} / {theirs_rate:,.0f} texts/s ({ours_rate / theirs_rate:.0f}x);"
               f" {1e6 / ours_rate / kb:.0f} / {1e6 / theirs_rate / kb:.0f} us per KB"),
              ("machine load average (1 min) during the timing", f"{load_1m:.1f} on {os.cpu_count()} cores")]
    table.append(_narrow_regions(result))
    result["ner"] = _ner(table)
    write_result("pii", result, table)
    for k, v in table:
        print(f"{k:<75} {v}")
    return result


def _narrow_regions(result: dict[str, Any]) -> tuple[str, str]:
    """Held-out PHONE recall when the policy lists only the dev split's countries: what a policy whose
    regions miss the callers' countries loses (their national-format numbers; international ones stay)."""
    from bench.pii_dataset import SPLITS

    regions = tuple(sorted({loc.split("_")[1] for loc in SPLITS["dev"]["locales"]}))
    records = load("heldout")
    narrow = score(records, [find_pii(r["text"], regions) for r in records], ("PHONE",))
    phone = narrow["per_type"]["PHONE"]
    result["heldout_phone_dev_regions_only"] = phone | {"regions": regions}
    return (f"heldout PHONE with phone_regions = the dev countries only ({len(regions)}): recall / precision",
            f"{phone['recall']:.3f} / {_fmt(phone['precision'])}")


def _as_one(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r | {"entities": [e | {"type": "ANY"} for e in r["entities"]]} for r in records]


def _ner(table: list[tuple[str, str]]) -> dict[str, Any]:
    """The NER detector against Presidio's analyzer on the same model, per split, plus its cost."""
    from shared.guardrails.ner import find_entities

    t0 = time.perf_counter()
    find_entities("warm up: Maria from Acme in Berlin")
    load_s = time.perf_counter() - t0
    theirs_scan = presidio_ner()
    out: dict[str, Any] = {"model_load_s": load_s}
    texts: list[str] = []
    for split in ("dev", "heldout"):
        records = load_ner(split)
        split_texts = [r["text"] for r in records]
        texts += split_texts
        a = score(records, [find_entities(t) for t in split_texts], NER_TYPES)
        b = score(records, [theirs_scan(t) for t in split_texts], NER_TYPES)
        ours_any = score(_as_one(records), [[("ANY", s, e) for _, s, e in p]
                                            for p in (find_entities(t) for t in split_texts)], ("ANY",))
        out[split] = {"streamgate": a, "presidio": b, "streamgate_any_type": ours_any}
        table.append((f"NER {split}, type ignored (a policy redacting all three): recall / precision",
                      f"{ours_any['recall']:.3f} / {ours_any['precision']:.3f}"))
        for kind in NER_TYPES:
            x, y = a["per_type"][kind], b["per_type"][kind]
            table.append((f"NER {split} {kind} (n={x['gold']}): recall / precision, streamgate vs Presidio",
                          f"{_fmt(x['recall'])} / {_fmt(x['precision'])}"
                          f" vs {_fmt(y['recall'])} / {_fmt(y['precision'])}"))
    ours_ms, theirs_ms = _ms_per_kb(find_entities, texts, 2), _ms_per_kb(theirs_scan, texts, 1)
    pattern_ms = _ms_per_kb(find_pii, texts, 3)
    out |= {"streamgate_ms_per_kb": ours_ms, "presidio_ms_per_kb": theirs_ms,
            "pattern_ms_per_kb": pattern_ms}
    per_text = ours_ms * sum(len(t.encode()) for t in texts) / 1024 / len(texts)
    one_kb = ("Maria Garcia from Acme Corp wrote from Berlin that the report shows the team shipped three "
              "features and the latency improved after the cache change. ") * 7
    kb_ms = _ms_per_kb(find_entities, [one_kb] * 20, 2)
    out |= {"streamgate_ms_per_text": per_text, "streamgate_ms_per_1kb_text": kb_ms}
    table += [("NER cost on the labeled texts (~60 B each): streamgate / Presidio (same model)",
               f"{ours_ms:.0f} / {theirs_ms:.0f} ms per KB ({per_text:.1f} ms per text for streamgate)"),
              ("NER cost on a 1 KB prompt (streamgate)", f"{kb_ms:.1f} ms per KB"),
              ("pattern scanner on the same texts (NER off, the default)",
               f"{pattern_ms * 1000:.0f} us per KB"),
              ("NER model first load (import + spacy.load)", f"{load_s:.1f} s")]
    return out
