"""The labeled PII set: seeded, synthetic prompts with exact entity spans, plus hard negatives.

`python -m bench.pii_dataset` rewrites bench/data/pii_labeled.jsonl. Values are generated to be *valid*
(Luhn, IBAN mod 97, SSN area rules) in varied real-world formats; negatives are look-alikes that must
not be flagged (order numbers, failing checksums, versions, timestamps, prices).
"""

from __future__ import annotations

import random
import re
import string
from pathlib import Path
from typing import Any

from bench.harness import read_jsonl, write_jsonl

PATH = Path(__file__).resolve().parent / "data" / "pii_labeled.jsonl"

_NAMES = ["john.doe", "maria_garcia", "li.wei", "a.smith+billing", "ops-team", "k.nakamura", "j.o'neil"]
_DOMAINS = ["example.com", "mail.example.org", "corp.example.co.uk", "example.io", "uni-example.edu"]
_IBAN_SHAPES = {"DE": "8n10n", "GB": "4a14n", "FR": "10n11c2n", "NL": "4a10n", "ES": "20n", "IT": "1a10n12c",
                "BE": "12n", "CH": "5n12c"}
_FILLERS = [
    "Please summarise the thread below and draft a reply.", "Can you help me rewrite this for a customer?",
    "Translate the following note into French.", "Extract the action items from this message.",
    "Classify this support ticket by urgency.", "What is the best way to answer this politely?",
]


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, d in enumerate(reversed(body)):
        v = int(d) * 2 if i % 2 == 0 else int(d)
        total += v - 9 if v > 9 else v
    return body + str((10 - total % 10) % 10)


def card(rng: random.Random) -> str:
    prefix, length, groups = rng.choice([("4", 16, (4, 4, 4, 4)), ("51", 16, (4, 4, 4, 4)),
                                         ("37", 15, (4, 6, 5)), ("6011", 16, (4, 4, 4, 4))])
    digits = _luhn_complete(prefix, length, rng)
    sep = rng.choice([" ", "-", ""])
    out, i = [], 0
    for g in groups:
        out.append(digits[i:i + g])
        i += g
    return sep.join(out)


def iban(rng: random.Random) -> str:
    country, shape = rng.choice(list(_IBAN_SHAPES.items()))
    bban = ""
    for count, kind in re.findall(r"(\d+)([nac])", shape):
        alphabet = {"n": string.digits, "a": string.ascii_uppercase,
                    "c": string.digits + string.ascii_uppercase}[kind]
        bban += "".join(rng.choice(alphabet) for _ in range(int(count)))
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    raw = f"{country}{check:02d}{bban}"
    return " ".join(raw[i:i + 4] for i in range(0, len(raw), 4)) if rng.random() < 0.6 else raw


def ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def phone(rng: random.Random) -> str:
    a, b, c = rng.randint(201, 989), rng.randint(200, 999), rng.randint(0, 9999)
    return rng.choice([f"({a}) {b}-{c:04d}", f"+1 {a} {b} {c:04d}", f"{a}-{b}-{c:04d}", f"+1-{a}-{b}-{c:04d}",
                       f"+44 20 {rng.randint(7000, 8999)} {rng.randint(1000, 9999)}",
                       f"+49 30 {rng.randint(100000, 999999)}{rng.randint(10, 99)}"])


def ip(rng: random.Random) -> str:
    if rng.random() < 0.75:
        return ".".join(str(rng.randint(1, 254)) for _ in range(4))
    return ":".join(f"{rng.randint(0, 65535):x}" for _ in range(8))


def email(rng: random.Random) -> str:
    return f"{rng.choice(_NAMES)}@{rng.choice(_DOMAINS)}".replace("'", "")


def api_key(rng: random.Random) -> str:
    alnum = string.ascii_letters + string.digits
    return rng.choice([
        "sk-proj-" + "".join(rng.choice(alnum) for _ in range(40)),
        "AKIA" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16)),
        "ghp_" + "".join(rng.choice(alnum) for _ in range(36)),
    ])


GENERATORS = {"EMAIL": email, "PHONE": phone, "CREDIT_CARD": card, "IBAN": iban, "US_SSN": ssn,
              "IP_ADDRESS": ip, "API_KEY": api_key}
_TEMPLATES = {
    "EMAIL": ["Reach me at {} if anything changes.", "The invoice went to {} yesterday.", "cc: {}"],
    "PHONE": ["Call the customer back on {} before noon.", "His mobile is {}.", "Phone: {}"],
    "CREDIT_CARD": ["She paid with card {} and wants a refund.", "Card number {} exp 09/27",
                    "charge {} for the upgrade"],
    "IBAN": ["Wire the deposit to {} by Friday.", "Our account: {}", "IBAN {} (business account)"],
    "US_SSN": ["SSN: {}", "His social security number is {}.", "applicant ssn {} verified"],
    "IP_ADDRESS": ["The attack came from {} at 03:14.", "Whitelist host {} please.", "client_ip={}"],
    "API_KEY": ["I accidentally pasted my key {} into the repo.", "export OPENAI_API_KEY={}",
                "aws key {} leaked"],
}
_NEGATIVES = [
    "Order #{n8} shipped on 2026-03-14 and costs $1,299.00.", "We moved from version 3.11.4 to 3.12.1 today.",
    "Ticket {n6} was reopened at 14:05:33 UTC.", "The card ending in {n4} was declined.",
    "Use tracking number {n12}{n6} with the courier.", "Reference 4111 1111 1111 1112 failed the check.",
    "The ratio was 0.75 and the p99 latency 120 ms.", "Call extension 4417 at the front desk.",
    "SKU {n4}-{n3}-{n4} is out of stock.", "Room 000-00-0000 is not a valid code.",
    "The build number is {n10}.", "Our office is at 221B Baker Street, floor 3.",
    "meeting notes: Q3 revenue up 12.5%, headcount 1,204", "Set timeout=30 and retries=3 in config.yaml",
]


def _fill_negative(template: str, rng: random.Random) -> str:
    def digits(n: int) -> str:
        return "".join(rng.choice(string.digits) for _ in range(n))
    return template.format(n3=digits(3), n4=digits(4), n6=digits(6), n8=digits(8), n10=digits(10),
                           n12=digits(12))


def generate(n_positive: int = 600, n_negative: int = 400, seed: int = 42) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    kinds = list(GENERATORS)
    for i in range(n_positive):
        text, entities = rng.choice(_FILLERS) + " ", []
        for kind in rng.sample(kinds, rng.choice([1, 1, 1, 2, 3])):
            template = rng.choice(_TEMPLATES[kind])
            value = GENERATORS[kind](rng)
            before, after = template.split("{}")
            start = len(text) + len(before)
            entities.append({"type": kind, "start": start, "end": start + len(value)})
            text += before + value + after + " "
        records.append({"id": f"p{i}", "text": text.rstrip(), "entities": entities})
    for i in range(n_negative):
        text = rng.choice(_FILLERS) + " " + _fill_negative(rng.choice(_NEGATIVES), rng)
        records.append({"id": f"n{i}", "text": text, "entities": []})
    rng.shuffle(records)
    return records


def load() -> list[dict[str, Any]]:
    return read_jsonl(PATH)


if __name__ == "__main__":
    write_jsonl(PATH, generate(), "labeled texts")
