"""The service-side request model: what it accepts, what it refuses, and that keys are hashed."""

from __future__ import annotations

import pytest

from streamgate.client import InvalidRequestError, build_request, hash_api_key


def _fields(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "team": "search", "project": "ranker", "model": "gpt-4o-mini", "api_key": "sk-live-secret",
        "messages": [{"role": "user", "content": "hello"}],
    }
    base.update(over)
    return base


def test_raw_key_is_hashed_and_never_in_the_event() -> None:
    request = build_request(**_fields())
    event = request.to_event()
    assert event["api_key_id"] == hash_api_key("sk-live-secret")
    assert event["api_key_id"].startswith("sha256:") and len(event["api_key_id"]) == 7 + 64
    assert "sk-live-secret" not in repr(event)
    assert "sk-live-secret" not in repr(request)


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ({"messages": []}, "messages"),
        ({"team": ""}, "team"),
        ({"params": {"temperature": 3.5}}, "temperature"),
        ({"params": {"max_tokens": 0}}, "max_tokens"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "role"),
        ({"api_key": None}, "exactly one of api_key"),
        ({"api_key_id": "plain-key"}, "exactly one of api_key"),
        ({"surprise": 1}, "surprise"),
        ({"created_at_ms": 2000, "deadline_at_ms": 2000}, "deadline_at_ms must be after created_at_ms"),
    ],
)
def test_invalid_requests_raise_a_named_error(override: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidRequestError, match=needle):
        build_request(**_fields(**override))


def test_api_key_id_must_be_a_hash() -> None:
    with pytest.raises(InvalidRequestError, match="must be a hash"):
        build_request(**_fields(api_key=None, api_key_id="sk-not-a-hash"))
    ok = build_request(**_fields(api_key=None, api_key_id=hash_api_key("k")))
    assert ok.key_id() == hash_api_key("k")


def test_a_timeout_becomes_the_deadline_unless_one_was_given() -> None:
    request = build_request(**_fields(created_at_ms=10_000))
    assert request.to_event()["deadline_at"] is None
    assert request.with_timeout(2.5).to_event()["deadline_at"] == 12_500
    assert request.with_timeout(0.0001).deadline_at_ms == 10_001  # always after its creation
    given = build_request(**_fields(created_at_ms=10_000, deadline_at_ms=11_000))
    assert given.with_timeout(60).deadline_at_ms == 11_000
