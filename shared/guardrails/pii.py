"""PII detection and redaction: one combined regex pass, validators only on candidates.

Detected types: EMAIL, PHONE, CREDIT_CARD (Luhn), IBAN (mod 97), US_SSN (area/group/serial rules),
IP_ADDRESS (v4 octets, v6), API_KEY (provider key formats, PEM private keys, secret assignments);
the number types are validated with maintained data (shared/guardrails/pii_numbers.py). PERSON, LOCATION
and ORGANIZATION come from an NER model (shared/guardrails/ner.py), only for teams whose policy names them.
Redaction uses typed, numbered placeholders (`<EMAIL_1>`); one value keeps one placeholder across all
messages of a request, so the model still sees that two mentions are the same thing.
"""

from __future__ import annotations

import ipaddress
import re

from shared.guardrails.ner import find_entities
from shared.guardrails.pii_numbers import card_number, iban_end, possible_phone
from shared.guardrails.verdicts import Finding, PiiOutcome
from shared.policy.config import DEFAULT_PHONE_REGIONS, NER_ENTITY_TYPES, GatewayPolicy

# Each type gets its own pattern, run only when a cheap test says the text could hold one: most prompts
# have no '@', no key prefix and no long digit run, so most patterns never scan them at all. Patterns that
# do scan every prompt start with a character class, not an optional token: Python's regex engine then
# skips ahead by class (about 8 us per KB) instead of trying the whole pattern at every position (30 us).
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_KEY_TOKEN = re.compile(
    r"\b(?:sk-(?:proj-)?[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}"
    r"|xox[baprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35})"
    r"|-----BEGIN (?:RSA |EC |OPENSSH )?PRIVATE KEY-----")
#: A secret assignment (`api_key = ...`, `password: ...`) is found from its separator: the value after
#: it, then the key word right before it (whitespace between allowed), read backwards.
_ASSIGNED = re.compile(r"(?i:[:=]\s*['\"]?[A-Za-z0-9_\-+/]{16,})")  # (?i) as before: U+017F counts
_SECRET_WORD = re.compile(r"(?i:api[_-]?key|secret|token|password)\Z")
_LONGEST_SECRET_WORD = len("password")
#: An IBAN in any case, its groups maybe spaced; `iban_end` trims a swallowed word and validates.
_IBAN = re.compile(r"\b[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{4}){2,7}(?: ?[A-Za-z0-9]{1,4})?\b")
_IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)")
#: Runs of digits and the separators numbers are written with (1-3 of them between two digits); each run
#: is then classified whole. :func:`_number_runs` adds a leading '+' / '(' and a trailing extension.
_NUMBER_RUN = re.compile(r"\d(?:[ .()/-]{1,3}\d|\d)*")
_SSN = re.compile(r"\d{3}([- ])\d{2}\1\d{4}")
_EXTENSION = re.compile(r"\s?(?:x|ext\.?|extension)\s?\d{1,6}\b", re.IGNORECASE)
_DIGITS = re.compile(r"\D")
#: A bare 12-15 digit run is a card only near a payment word: unseparated, such runs are far more often
#: EAN barcodes and millisecond timestamps, and Maestro's 12-19 digit range takes one in ten of them.
_CARD_WORDS = re.compile(r"(?i)card|credit|debit|visa|master|amex|maestro|\bcc\b|cvv|cvc|\bexp|pay|charg"
                         r"|karte|carte|tarjeta|cart[ãa]o|carta|kort|kaart|karta|カード|卡")


def _ssn(text: str) -> bool:
    area, group, serial = text[:3], text[4:6], text[7:]
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


def _ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


_SCORES = {"EMAIL": 1.0, "API_KEY": 0.95, "IBAN": 1.0, "CREDIT_CARD": 1.0, "US_SSN": 0.9, "IP_ADDRESS": 0.9,
           "PHONE": 0.75}
#: Every entity type the pattern scanner (`find_pii`) reports.
ENTITY_TYPES = tuple(_SCORES)
#: The NER detector gives no calibrated score per entity: its findings carry this one.
_NER_SCORE = 0.85
_SEVERITY = {"allow": 0, "redact": 1, "block": 2}


def _may_hold_key(text: str) -> bool:
    """Whether a key token's fixed prefix occurs: a substring test costs ~0.7 us per KB, the token
    pattern ~10 (`_` first: a one-character test is a memchr, and gh*_ tokens all hold one)."""
    return ("sk-" in text or "AKIA" in text or "AIza" in text or "xox" in text
            or ("_" in text and "gh" in text) or "PRIVATE KEY" in text)


def _first_digit(text: str) -> int:
    r"""Where a digit scan can begin, -1 if nowhere. The regex engine steps ~12 ns per character to
    find a digit; one memchr per ASCII digit is ~1 us per KB. Non-ASCII text starts at 0: `\d` also
    matches other scripts' digits."""
    if not text.isascii():
        return 0
    found = [i for i in map(text.find, "0123456789") if i >= 0]
    return min(found) if found else -1


def _number_runs(text: str) -> tuple[list[tuple[int, int, int]], list[int]]:
    """Digit runs long enough to be an entity (7+ characters): (start, end of the digits, end with an
    extension), a run opening with the '+', '(' or '(+' written before it; and where every run of digits
    starts (an IBAN's check digits open one)."""
    runs: list[tuple[int, int, int]] = []
    starts: list[int] = []
    first = _first_digit(text)
    if first < 0:
        return runs, starts
    for m in _NUMBER_RUN.finditer(text, first):
        start, end = m.start(), m.end()
        starts.append(start)
        if end - start < 7:
            continue
        while start and text[start - 1] in "+(" and m.start() - start < 2:
            start -= 1
        ext = _EXTENSION.match(text, end)
        runs.append((start, end, ext.end() if ext else end))
    return runs, starts


def _ibans(text: str, digit_starts: list[int]) -> list[tuple[str, int, int]]:
    """IBANs, tried only where two letters open a run of digits (the country and check digits): the
    pattern, run over every word, would cost ~150 us per KB of prose."""
    found = []
    for s in digit_starts:
        if s < 2 or not (text[s - 2].isalpha() and text[s - 1].isalpha()):
            continue
        m = _IBAN.match(text, s - 2)
        if m and (length := iban_end(m.group())):
            found.append(("IBAN", m.start(), m.start() + length))
    return found


def _secret_assignments(text: str) -> list[tuple[str, int, int]]:
    found = []
    for m in _ASSIGNED.finditer(text):
        end_of_word = m.start()
        while end_of_word and text[end_of_word - 1].isspace():
            end_of_word -= 1
        word = _SECRET_WORD.search(text, max(end_of_word - _LONGEST_SECRET_WORD, 0), end_of_word)
        if word:
            found.append(("API_KEY", word.start(), m.end()))
    return found


def _classify_run(text: str, start: int, end: int, ext_end: int,
                  regions: tuple[str, ...]) -> list[tuple[str, int, int]]:
    """What one digit run is: IPv4 addresses inside it, else a card, an SSN or a phone number (whole)."""
    body = text[start:end]
    if "." in body:
        ips = [("IP_ADDRESS", start + m.start(), start + m.end()) for m in _IPV4.finditer(body)
               if _ip(m.group())]
        if ips:
            return ips
    digits = len(_DIGITS.sub("", body))
    if digits < 7:
        return []
    core = body.lstrip("+(")
    if 12 <= digits <= 19 and card_number(core) and (
            digits > 15 or not core.isdigit() or _CARD_WORDS.search(text, max(start - 40, 0), end + 20)):
        return [("CREDIT_CARD", end - len(core), end)]
    if digits == 9 and _SSN.fullmatch(core):
        return [("US_SSN", end - len(core), end)] if _ssn(core) else []
    if start and (text[start - 1].isalnum() or text[start - 1] in ":.-/_"):
        return []  # glued to a word or a time: INV-2026-50847, 17:10:07.99, ISBN-10
    if possible_phone(text[start:ext_end], regions, text[max(start - 40, 0):start]):
        return [("PHONE", start, ext_end)]
    return []


_MAX_SPLIT_RUN = 64


def _split_run(text: str, start: int, end: int, ext_end: int,
               regions: tuple[str, ...]) -> list[tuple[str, int, int]]:
    """Two entities written one after the other ('SSN 443-34-8152 (11) 96123-4295'): a run that is
    nothing whole is split at a space when its left side is a card, SSN or IP and its right side is
    something too (halves of one long number, 'USPS 9400 7286 9080 0942 8316 44', must not count).
    Only short runs are split: two entities side by side span under 64 characters, and splitting a long
    run (a table of numbers) at every space would cost time quadratic in its length."""
    if end - start > _MAX_SPLIT_RUN:
        return []
    for i in range(start + 1, end - 1):
        if text[i] != " ":
            continue
        left = _classify_run(text, start, i, i, regions)
        if left and left[-1][0] != "PHONE":
            right_start = i + 1
            right = _classify_run(text, right_start, end, ext_end, regions)
            if right:
                return left + right
    return []


def _candidates(text: str, regions: tuple[str, ...]) -> list[tuple[str, int, int]]:
    found: list[tuple[str, int, int]] = []
    if "@" in text:
        found += [("EMAIL", m.start(), m.end()) for m in _EMAIL.finditer(text)]
    if _may_hold_key(text):
        found += [("API_KEY", m.start(), m.end()) for m in _KEY_TOKEN.finditer(text)]
    if ":" in text or "=" in text:
        found += _secret_assignments(text)
    if "::" in text or text.count(":") >= 3:
        found += [("IP_ADDRESS", m.start(), m.end()) for m in _IPV6.finditer(text) if _ip(m.group())]
    runs, digit_starts = _number_runs(text)
    for start, end, ext_end in runs:
        kinds = _classify_run(text, start, end, ext_end, regions)
        found += kinds or _split_run(text, start, end, ext_end, regions)
    return found + _ibans(text, digit_starts)


_PRIORITY = {k: i for i, k in enumerate(("API_KEY", "EMAIL", "IBAN", "CREDIT_CARD", "US_SSN", "IP_ADDRESS",
                                         "PHONE"))}


def find_pii(text: str, phone_regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS) -> list[tuple[str, int, int]]:
    """(type, start, end) of every validated entity, left to right, non-overlapping.

    `phone_regions`: countries whose national-format numbers count (international ones always do)."""
    valid = _candidates(text, phone_regions)
    valid.sort(key=lambda c: (c[1], _PRIORITY[c[0]], -c[2]))
    chosen: list[tuple[str, int, int]] = []
    for kind, start, end in valid:
        if chosen and start < chosen[-1][2]:
            continue
        chosen.append((kind, start, end))
    return chosen


def ner_types(policy: GatewayPolicy, team: str) -> tuple[str, ...]:
    """The NER entity types the team's policy acts on (none unless the policy names them)."""
    return tuple(t for t in NER_ENTITY_TYPES if policy.pii_action(team, t) != "allow")


def find_all(text: str, policy: GatewayPolicy, team: str) -> list[tuple[str, int, int]]:
    """The pattern scanner's entities plus, when the team's policy asks for them, the NER detector's;
    a pattern entity wins where the two overlap ('Deutsche Bank DE89 3704 …' stays an IBAN)."""
    found = find_pii(text, tuple(policy.guardrails.phone_regions))
    wanted = ner_types(policy, team)
    if not wanted:
        return found
    merged = list(found)
    for kind, start, end in find_entities(text, wanted):
        if not any(s < end and start < e for _, s, e in found):
            merged.append((kind, start, end))
    merged.sort(key=lambda c: c[1])
    return merged


def scan_pii(texts: list[str], policy: GatewayPolicy, team: str) -> PiiOutcome:
    """Scan every message; redact, allow or block per entity type and team; worst action wins."""
    findings: list[Finding] = []
    placeholders: dict[tuple[str, str], str] = {}
    counters: dict[str, int] = {}
    redacted: list[str] = []
    worst = "allow"
    for index, text in enumerate(texts):
        pieces: list[str] = []
        last = 0
        for kind, start, end in find_all(text, policy, team):
            action = policy.pii_action(team, kind)
            findings.append(Finding(index, kind, start, end, _SCORES.get(kind, _NER_SCORE), action))
            if _SEVERITY[action] > _SEVERITY[worst]:
                worst = action
            if action == "allow":
                continue
            value = text[start:end]
            label = placeholders.get((kind, value))
            if label is None:
                counters[kind] = counters.get(kind, 0) + 1
                label = placeholders[(kind, value)] = f"<{kind}_{counters[kind]}>"
            pieces += [text[last:start], label]
            last = end
        redacted.append("".join(pieces) + text[last:] if pieces else text)
    return PiiOutcome(redacted, findings, worst)
