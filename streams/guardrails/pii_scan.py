"""PII detection and redaction: one combined regex pass, validators only on candidates.

Detected types: EMAIL, PHONE, CREDIT_CARD (Luhn), IBAN (mod 97), US_SSN (area/group/serial rules),
IP_ADDRESS (v4 octets, v6), API_KEY (provider key formats, PEM private keys, secret assignments).
Redaction uses typed, numbered placeholders (`<EMAIL_1>`); one value keeps one placeholder across all
messages of a request, so the model still sees that two mentions are the same thing.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from streams.guardrails.stage import Finding, PiiOutcome
from streams.policy.config import GatewayPolicy

_PATTERNS: dict[str, str] = {
    "EMAIL": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    "API_KEY": (r"\b(?:sk-(?:proj-)?[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}"
                r"|xox[baprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35})"
                r"|-----BEGIN (?:RSA |EC |OPENSSH )?PRIVATE KEY-----"
                r"|(?i:(?:api[_-]?key|secret|token|password)\s*[:=]\s*['\"]?[A-Za-z0-9_\-+/]{16,})"),
    "IBAN": r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b",
    "CREDIT_CARD": r"\b(?:\d[ -]?){12,18}\d\b",
    "US_SSN": r"\b\d{3}-\d{2}-\d{4}\b",
    "IP_ADDRESS": (r"\b(?:\d{1,3}\.){3}\d{1,3}\b"
                   r"|(?<![\w:])(?:[0-9a-fA-F]{1,4}:){2,7}(?::|[0-9a-fA-F]{1,4})(?![\w:])"),
    "PHONE": r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?)?\d{2,4}[ .-]\d{3,4}[ .-]?\d{2,4}(?!\w)",
}
_COMBINED = re.compile("|".join(f"(?P<{name}>{p})" for name, p in _PATTERNS.items()))
_DIGITS = re.compile(r"\D")


def _luhn(number: str) -> bool:
    digits = [int(d) for d in _DIGITS.sub("", number)]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        doubled = d * 2 if i % 2 else d
        total += doubled - 9 if doubled > 9 else doubled
    return total % 10 == 0


def _iban(text: str) -> bool:
    s = text.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _ssn(text: str) -> bool:
    area, group, serial = text.split("-")
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


def _ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _phone(text: str) -> bool:
    digits = _DIGITS.sub("", text)
    return 7 <= len(digits) <= 15 and (text.startswith("+") or "(" in text or len(digits) >= 10)


_VALIDATORS: dict[str, Callable[[str], bool]] = {
    "CREDIT_CARD": _luhn, "IBAN": _iban, "US_SSN": _ssn, "IP_ADDRESS": _ip, "PHONE": _phone,
}
_SCORES = {"EMAIL": 1.0, "API_KEY": 0.95, "IBAN": 1.0, "CREDIT_CARD": 1.0, "US_SSN": 0.9, "IP_ADDRESS": 0.9,
           "PHONE": 0.75}
_SEVERITY = {"allow": 0, "redact": 1, "block": 2}


def find_pii(text: str) -> list[tuple[str, int, int]]:
    """(type, start, end) of every validated entity, left to right, non-overlapping."""
    found: list[tuple[str, int, int]] = []
    for match in _COMBINED.finditer(text):
        kind = match.lastgroup
        if kind is None:
            continue
        validator = _VALIDATORS.get(kind)
        if validator is None or validator(match.group(0)):
            found.append((kind, match.start(), match.end()))
    return found


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
        for kind, start, end in find_pii(text):
            action = policy.pii_action(team, kind)
            findings.append(Finding(index, kind, start, end, _SCORES[kind], action))
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
