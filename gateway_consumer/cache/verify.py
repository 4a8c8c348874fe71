"""Word-level checks on a semantic-cache candidate: near-paraphrases that differ in a number or a negation
embed almost identically but need a different answer (`conflicting`, stage 2 of match.py); `compatible`
is the stricter rule set in front of the overlap model (overlap.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_QUOTED = re.compile(r"'([^']{2,})'|\"([^\"]{2,})\"")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_NEGATIONS = frozenset({"not", "no", "never", "without", "nor", "none", "cannot", "nothing", "neither"})
#: Words that flip what is asked for without a negation ("books to read" vs "books to avoid").
_POLARITY = frozenset(
    {
        "avoid",
        "stop",
        "disable",
        "uninstall",
        "remove",
        "delete",
        "prevent",
        "exclude",
        "except",
        "against",
        "worst",
        "least",
        "decrease",
        "reduce",
        "lower",
        "less",
        "fewer",
        "before",
        "after",
        "undo",
        "revert",
    }
)
#: Capitalised words that are not names: sentence starters and question words.
_NOT_NAMES = frozenset(
    {
        "I",
        "A",
        "An",
        "The",
        "What",
        "Which",
        "Who",
        "How",
        "Why",
        "When",
        "Where",
        "Can",
        "Could",
        "Please",
        "Give",
        "List",
        "Tell",
        "Write",
        "Explain",
        "Describe",
        "Name",
        "Summarize",
        "Summarise",
        "Suggest",
        "Recommend",
        "Convert",
        "Translate",
        "Count",
        "Compose",
        "Guide",
        "Tips",
        "My",
        "Is",
        "Are",
        "Do",
        "Does",
        "It",
        "In",
        "On",
    }
)


@dataclass(frozen=True, slots=True)
class Signature:
    numbers: tuple[str, ...]
    names: frozenset[str]
    quoted: frozenset[str]
    negated: bool
    polarity: frozenset[str]
    #: The words in order, to tell "miles to km" from "km to miles" (same words, other question).
    words: tuple[str, ...]


def signature(text: str) -> Signature:
    raw = _WORD.findall(text)
    negations = sum(1 for w in raw if w.lower() in _NEGATIONS or w.lower().endswith("n't"))
    words = [w.split("'")[0] for w in raw]  # "What's" -> "What"
    lower = tuple(w.lower() for w in words)
    return Signature(
        numbers=tuple(sorted(_NUMBER.findall(text))),
        names=frozenset(w for w in words if w[:1].isupper() and w not in _NOT_NAMES),
        quoted=frozenset(a or b for a, b in _QUOTED.findall(text)),
        negated=negations % 2 == 1,
        polarity=frozenset(w for w in lower if w in _POLARITY),
        words=lower,
    )


def compatible(a: Signature, b: Signature, *, names_subset: bool = False) -> bool:
    """May an answer to one prompt be reused for the other (given they embed alike)? The strict word
    rules: the same numbers, quoted strings, negation, polarity words and names.

    With `names_subset` one side's names may include the other's ("Mr So" / "So": news-style text names
    a party in several ways), and the caller weighs the extra ones (the overlap model does). Two
    different names ("Kafka" / "Redis") are refused either way."""
    if (a.numbers, a.quoted, a.negated, a.polarity) != (b.numbers, b.quoted, b.negated, b.polarity):
        return False
    if a.names != b.names and not (names_subset and (a.names <= b.names or b.names <= a.names)):
        return False
    # the same words in another order ask another question ("miles to km" / "km to miles")
    return not (a.words != b.words and sorted(a.words) == sorted(b.words))


def conflicting(a: Signature, b: Signature) -> bool:
    """Do the two prompts certainly ask different things, whatever they embed as?

    Only conflicts no paraphrase has: both name numbers and they are not the same numbers, one is
    negated and the other not, or the same words in another order ("miles to km" / "km to miles"). A
    number, name or quotation on one side only may be extra detail or a rewording, which the
    cross-encoder weighs (gateway_consumer/cache/match.py)."""
    if a.numbers and b.numbers and set(a.numbers) != set(b.numbers):
        return True
    return a.negated != b.negated or (a.words != b.words and sorted(a.words) == sorted(b.words))
