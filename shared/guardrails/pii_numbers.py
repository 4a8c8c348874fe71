"""Validators for the number-shaped PII types, backed by the field's maintained data, not our own tables.

- PHONE: Google's libphonenumber metadata (the `phonenumbers` port): an international number (`+CC`,
  `00CC`, `011CC`) must be a possible number of its country; a national one a possible number of one of
  the policy's regions (trunk prefix stripped, length in the country's possible lengths). Layout rules
  (`phone_layout_ok`) keep order numbers, dates, prices and versions out.
- CREDIT_CARD: Luhn plus the issuer (IIN) ranges and lengths of the bin-cc data set, as packaged by
  `creditcard-identifier` (regenerated from bin-cc's sources; see docs/pii.md), with the few historic
  ranges it lacks listed in `_EXTRA_CARD_RANGES` and cited there.
- IBAN: the SWIFT IBAN registry's per-country structure (length and BBAN format) and ISO 7064 mod 97-10,
  as `python-stdnum` ships them; case-insensitive, spaces allowed.

Each validator runs only on candidates the scanner's cheap patterns found, so their cost is per number
found, not per KB of text.
"""

from __future__ import annotations

import re
from functools import cache

import phonenumbers
from phonenumbers import PhoneMetadata
from stdnum import iban as _stdnum_iban

_DIGIT = re.compile(r"\d")
_NON_DIGIT = re.compile(r"\D")


# ---------------------------------------------------------------- phone numbers

@cache
def _national_rules(regions: tuple[str, ...]) -> tuple[tuple[str, frozenset[int]], ...]:
    """(trunk prefix or "", possible national lengths) per region, from libphonenumber's metadata."""
    rules = []
    for region in regions:
        meta = PhoneMetadata.metadata_for_region(region.upper())
        if meta is None:
            raise ValueError(f"unknown phone region {region!r} (use ISO 3166 codes such as 'US', 'DE')")
        desc = meta.general_desc
        if desc is None:
            continue
        lengths = frozenset(desc.possible_length or ()) | frozenset(desc.possible_length_local_only or ())
        rules.append((meta.national_prefix or "", lengths))
    return tuple(rules)


@cache
def _country_rules(country_code: int) -> tuple[str, frozenset[int]] | None:
    """(trunk prefix, possible national lengths) of a country calling code's main region, or None."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code)
    if not regions:
        return None
    meta = (PhoneMetadata.metadata_for_nongeo_region(country_code) if regions[0] == "001"
            else PhoneMetadata.metadata_for_region(regions[0]))
    if meta is None or meta.general_desc is None:
        return None
    desc = meta.general_desc
    lengths = frozenset(desc.possible_length or ()) | frozenset(desc.possible_length_local_only or ())
    return meta.national_prefix or "", lengths


def _possible_international(digits: str) -> bool:
    """libphonenumber's `is_possible_number` for '+' + digits. Most numbers are decided from its metadata
    without a parse (a parse costs ~100 us): country codes are prefix-free, so the first 1-3 digits that
    are one name the country, and a national part of a possible length is possible. Anything else (a
    trunk prefix written after the country code, say) goes through the library's own parse."""
    if not digits or digits[0] == "0":
        return False
    for size in (1, 2, 3):
        rules = _country_rules(int(digits[:size]))
        if rules is not None:
            if len(digits) - size in rules[1]:
                return True
            break
    try:
        number = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_possible_number(number))


def _possible_national(digits: str, regions: tuple[str, ...]) -> bool:
    for trunk, lengths in _national_rules(regions):
        national = digits[len(trunk):] if trunk and digits.startswith(trunk) else digits
        if len(national) in lengths:
            return True
    return False


_EXTENSION = re.compile(r"\s*(?:x|ext\.?|extension|#)\s*\d{1,6}\Z", re.IGNORECASE)
_DATE = re.compile(r"\d{1,4}([./-])\d{1,2}\1\d{1,4}")
_GROUPS = re.compile(r"[ .()/-]+")


def _is_date(body: str) -> bool:
    """2026-03-14, 14.03.2026, 03/14/26: a year-month-day or day/month-year layout with valid fields."""
    if not _DATE.fullmatch(body):
        return False
    parts = [int(p) for p in re.split(r"[./-]", body)]
    first, second, third = parts
    if first > 31:  # year first
        return 1 <= second <= 12 and 1 <= third <= 31
    return 1 <= min(first, second) <= 12 and max(first, second) <= 31


#: Words that announce a phone number in the languages the gateway sees most (as Presidio's phone
#: recognizer uses context); only needed for a bare digit run, which is otherwise an ID.
_PHONE_WORDS = re.compile(
    r"(?i)\b(?:phone|tel\b|tel\.|telephone|call|mobile|cell|fax|whats\s?app|sms|ring|reach|contact|dial|hotline"
    r"|telefon|rufnummer|handy|t[ée]l[ée]phone|portable|appel|tel[ée]fono|m[óo]vil|llam|celular|cellulare"
    r"|puhelin|telefoon|bel |ring |電話|电话|手机|전화|телефон|звон)")


def phone_layout_ok(body: str) -> bool:
    """Whether a digit run (no extension) is written the way phone numbers are, not as a date, decimal,
    price, version, ISBN, card or order number. A bare run (no separator) is judged by the caller."""
    if body.startswith(("+", "(+")):
        return True
    groups = [g for g in _GROUPS.split(body) if g]
    if len(groups) == 1 or _is_date(body):
        return False
    sizes = [len(g) for g in groups]
    seps = set(_DIGIT.sub("", body).replace("(", "").replace(")", "").replace(" ", "") or " ")
    if seps == {"."} and (min(sizes) < 2 or (not body.startswith("0")
                          and (len(groups) == 2 or all(n == 3 for n in sizes[1:])))):
        return False  # a decimal, a version (10.0.19045.1) or thousands (1.234.567)
    if seps == {"."} and body.count(".") == 1 and body.rfind(".") > body.rfind(" ") and sizes[-1] == 2:
        return False  # a price with spaced thousands: 22 478.38
    if {".", "-"} <= seps:
        return False  # 1003.1-2017: a standard's number, not a phone layout
    if sizes == [4, 4] and all(1900 <= int(g) <= 2099 for g in groups):
        return False  # a range of years: 2019-2021
    if sizes[-1] < 2 or sum(n >= 6 for n in sizes) >= 2:
        return False  # ISBN check digits, order numbers (113-4567890-1234567)
    if sizes == [4, 3, 4] and ("-" in seps or not body.lstrip("(").startswith("0")):
        return False  # a SKU; 0151 496 0468 is a UK number
    if sizes[:3] == [4, 4, 4]:
        return False  # a card number (one that failed Luhn or its issuer's ranges)
    return sizes not in ([3, 2, 4], [4, 4, 4], [4, 4, 4, 4])  # the SSN, parcel and card layouts


def possible_phone(text: str, regions: tuple[str, ...], context: str = "") -> bool:
    """Whether `text` (a candidate span, maybe with an extension) is a possible phone number. `context`:
    the text just before it, which must name a phone when the number is a bare run of digits."""
    body = _EXTENSION.sub("", text)
    bare = body.isdigit()
    if bare:
        if not _PHONE_WORDS.search(context):
            return False
    elif not phone_layout_ok(body):
        return False
    digits = _NON_DIGIT.sub("", body.replace("(0)", ""))
    stripped = body.lstrip("( ")
    if stripped.startswith("+"):
        return 7 <= len(digits) <= 15 and _possible_international(digits)
    if digits.startswith("00") or digits.startswith("011"):
        international = digits[2:] if digits.startswith("00") else digits[3:]
        if 7 <= len(international) <= 15 and _possible_international(international):
            return True
    return 7 <= len(digits) <= 15 and _possible_national(digits, regions)


# ---------------------------------------------------------------- payment cards

#: Ranges bin-cc lacks, with where they are documented: JCB's original 15-digit ranges 1800 and 2131
#: (ISO/IEC 7812 register as cited in the "Payment card number" IIN table; still generated by Faker's
#: credit-card provider), and JCB/Diners numbers up to 19 digits (JCB 3528-3589: 16-19 digits;
#: Diners Club International 36: 14-19 digits, same table).
_EXTRA_CARD_RANGES = (
    re.compile(r"(?:1800|2131)\d{11}"),
    re.compile(r"35(?:2[89]|[3-8]\d)\d{12,15}"),
    re.compile(r"36\d{12,17}"),
)


@cache
def _card_patterns() -> tuple[re.Pattern[str], ...]:
    from creditcard_identifier.brands import BRANDS  # the regex table only: its 40 MB JSON stays unread

    return tuple(re.compile(b["regexp_full"]) for b in BRANDS) + _EXTRA_CARD_RANGES


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_number(text: str) -> bool:
    """12-19 digits, one separator kind at most, Luhn-valid, and inside an issuer's range and length."""
    seps = set(_DIGIT.sub("", text))
    if len(seps) > 1 or not seps <= {" ", "-"}:
        return False
    digits = _NON_DIGIT.sub("", text)
    if not 12 <= len(digits) <= 19 or not luhn_ok(digits):
        return False
    return any(p.match(digits) for p in _card_patterns())


# ---------------------------------------------------------------- IBAN

_IBAN_DIGITS = str.maketrans({c: str(ord(c) - 55) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"})


def _mod97_ok(text: str) -> bool:
    """ISO 7064 mod 97-10 in a few microseconds: it rejects 96 in 97 candidates before stdnum's full
    check (its registry lookup costs ~100 us)."""
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact.isalnum():
        return False
    digits = (compact[4:] + compact[:4]).translate(_IBAN_DIGITS)
    return digits.isdigit() and int(digits) % 97 == 1


@cache
def _iban_length(country: str) -> int:
    """The IBAN length of a country in the registry stdnum ships (0: no IBAN country)."""
    from stdnum import numdb

    info = numdb.get("iban").info(country)[0][1]
    return 4 + sum(int(n) for n in re.findall(r"(\d+)!?[nac]", info.get("bban", ""))) if info else 0


def iban_end(text: str) -> int:
    """Length of the prefix of a candidate (groups of 4 maybe spaced) that is a valid IBAN; 0 if none.
    The country's registry length says where it ends, so a candidate that swallowed the word after it
    ('DE89 3704 0044 0532 0130 00 send') is cut there, and one check decides."""
    length = _iban_length(text[:2].upper())
    if not length:
        return 0
    seen = end = 0
    while end < len(text) and seen < length:
        seen += text[end] != " "
        end += 1
    if seen < length or (end < len(text) and text[end] != " "):
        return 0
    return end if _mod97_ok(text[:end]) and _stdnum_iban.is_valid(text[:end]) else 0
