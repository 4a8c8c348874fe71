"""The labeled paraphrase set for the semantic cache: pairs that must share an answer, and pairs that
must not.

`python -m bench.paraphrase_dataset` rewrites bench/data/paraphrases.jsonl. Each intent has several
phrasings and slots (a product, a number, a place); pairs are
- `paraphrase`: same intent and slots, different phrasing (same answer),
- `number`, `entity`: same phrasing, one slot changed (different answer; these score very high),
- `negation`: the question negated (different answer),
- `unrelated`: different intents.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from bench.harness import read_jsonl, write_jsonl

PATH = Path(__file__).resolve().parent / "data" / "paraphrases.jsonl"

ENTITIES = [
    "Kafka",
    "Postgres",
    "Redis",
    "Spark",
    "Snowflake",
    "Terraform",
    "Kubernetes",
    "Airflow",
    "Delta Lake",
    "BigQuery",
    "Flink",
    "DuckDB",
]
PLACES = ["Germany", "Japan", "Brazil", "Canada", "India", "France", "Kenya", "Mexico"]
NUMBERS = ["3", "5", "7", "10", "12", "20", "50", "100"]

# Each intent: phrasings with the same slots; `neg` is a negated phrasing (a different question).
INTENTS: list[dict[str, Any]] = [
    {
        "p": [
            "How do I reset my password in {E}?",
            "What are the steps to reset a password in {E}?",
            "I forgot my {E} password, how can I reset it?",
        ],
        "neg": "Why can I not reset my password in {E}?",
    },
    {
        "p": [
            "Summarize the top {N} risks of migrating to {E}.",
            "List the {N} biggest risks when moving to {E}, briefly.",
            "Give me a short summary of the {N} main risks of a migration to {E}.",
        ],
        "neg": "Summarize the top {N} benefits of not migrating to {E}.",
    },
    {
        "p": [
            "What is the corporate tax rate in {P}?",
            "How high is the corporate income tax in {P}?",
            "Tell me the company tax rate for {P}.",
        ],
        "neg": "Which companies do not pay corporate tax in {P}?",
    },
    {
        "p": [
            "How do I back up a {E} database?",
            "What's the best way to take a backup of a {E} database?",
            "Explain how to create a backup of my {E} database.",
        ],
        "neg": "Why should I not back up a {E} database daily?",
    },
    {
        "p": [
            "Write a {N}-line poem about {E}.",
            "Compose a poem of {N} lines about {E}.",
            "Can you write me a poem about {E} that is {N} lines long?",
        ],
        "neg": "Write a {N}-line poem that never mentions {E}.",
    },
    {
        "p": [
            "What is the capital of {P}?",
            "Which city is the capital of {P}?",
            "Name the capital city of {P}.",
        ],
        "neg": "Which city in {P} is not the capital?",
    },
    {
        "p": [
            "How can I speed up slow queries in {E}?",
            "My {E} queries are slow, how do I make them faster?",
            "Tips to improve query performance in {E}?",
        ],
        "neg": "Why are my {E} queries not slow anymore?",
    },
    {
        "p": [
            "Translate 'good morning' into the language of {P}.",
            "How do you say 'good morning' in {P}?",
            "What is 'good morning' in the main language spoken in {P}?",
        ],
        "neg": "How do you say 'good night' in {P}?",
    },
    {
        "p": [
            "Give me {N} interview questions about {E}.",
            "List {N} questions to ask a candidate about {E}.",
            "Suggest {N} interview questions on {E}.",
        ],
        "neg": "Give me {N} interview questions that are not about {E}.",
    },
    {
        "p": [
            "What does the error 'connection refused' mean in {E}?",
            "Why does {E} say 'connection refused'?",
            "I get 'connection refused' from {E}, what does it mean?",
        ],
        "neg": "Why does {E} not say 'connection refused' anymore?",
    },
    {
        "p": [
            "How many time zones does {P} have?",
            "What is the number of time zones in {P}?",
            "Count the time zones used in {P}.",
        ],
        "neg": "Which time zone does {P} not use?",
    },
    {
        "p": [
            "Explain {E} to a {N}-year-old.",
            "How would you describe {E} to a child of {N}?",
            "Describe {E} in terms a {N} year old understands.",
        ],
        "neg": "Explain {E} to someone who is not {N} years old but an expert.",
    },
    {
        "p": [
            "Recommend {N} books about {E}.",
            "Which {N} books should I read to learn {E}?",
            "Suggest {N} good books on {E}.",
        ],
        "neg": "Which {N} books about {E} should I avoid?",
    },
    {
        "p": [
            "What is the population of {P}?",
            "How many people live in {P}?",
            "How large is the population of {P}?",
        ],
        "neg": "How many people left {P} last year?",
    },
    {
        "p": [
            "Convert {N} miles to kilometres.",
            "How many kilometres are {N} miles?",
            "What is {N} miles in km?",
        ],
        "neg": "Convert {N} kilometres to miles.",
    },
    {
        "p": [
            "How do I install {E} on Ubuntu?",
            "What are the steps to install {E} on an Ubuntu server?",
            "Guide me through installing {E} on Ubuntu.",
        ],
        "neg": "How do I uninstall {E} from Ubuntu?",
    },
]


def _fill(template: str, e: str, p: str, n: str) -> str:
    return template.replace("{E}", e).replace("{P}", p).replace("{N}", n)


def generate(seed: int = 3, per_kind: int = 250) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []

    def slots() -> tuple[str, str, str]:
        return rng.choice(ENTITIES), rng.choice(PLACES), rng.choice(NUMBERS)

    for _ in range(per_kind):
        intent = rng.choice(INTENTS)
        e, p, n = slots()
        a, b = rng.sample(intent["p"], 2)
        rows.append({"a": _fill(a, e, p, n), "b": _fill(b, e, p, n), "same": True, "kind": "paraphrase"})
    for kind in ("number", "entity"):
        for _ in range(per_kind // 2):
            marks = ("{N}",) if kind == "number" else ("{E}", "{P}")
            intent = rng.choice([i for i in INTENTS if any(m in i["p"][0] for m in marks)])
            a, b = rng.choice(intent["p"]), rng.choice(intent["p"])
            e, p, n = slots()
            e2 = rng.choice([x for x in ENTITIES if x != e])
            p2 = rng.choice([x for x in PLACES if x != p])
            n2 = rng.choice([x for x in NUMBERS if x != n])
            second = _fill(b, e, p, n2) if kind == "number" else _fill(b, e2, p2, n)
            rows.append({"a": _fill(a, e, p, n), "b": second, "same": False, "kind": kind})
    for _ in range(per_kind // 2):
        intent = rng.choice(INTENTS)
        e, p, n = slots()
        rows.append(
            {
                "a": _fill(rng.choice(intent["p"]), e, p, n),
                "b": _fill(intent["neg"], e, p, n),
                "same": False,
                "kind": "negation",
            }
        )
    for _ in range(per_kind // 2):
        i1, i2 = rng.sample(INTENTS, 2)
        e, p, n = slots()
        rows.append(
            {
                "a": _fill(rng.choice(i1["p"]), e, p, n),
                "b": _fill(rng.choice(i2["p"]), e, p, n),
                "same": False,
                "kind": "unrelated",
            }
        )
    return rows


def load() -> list[dict[str, Any]]:
    return read_jsonl(PATH)


if __name__ == "__main__":
    write_jsonl(PATH, generate(), "labeled pairs")
