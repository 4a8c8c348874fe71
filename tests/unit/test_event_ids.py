"""Event ids are RFC 4122 version-4 UUIDs in canonical form, and distinct."""

from __future__ import annotations

import uuid

from shared.guardrails.outcome import event_id


def test_event_ids_are_canonical_version_4_uuids_and_distinct() -> None:
    ids = [event_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:2000]:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == text
    # every hex digit outside the fixed version and variant digits varies
    assert all(len({i[pos] for i in ids}) > 8 for pos in range(36) if pos not in (8, 13, 14, 18, 19, 23))
