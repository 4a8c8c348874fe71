"""API keys without a broker: format, keyed hash, the ring's decisions, the secret's handling."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from schemas import make_codec
from shared.identity import (
    IdentityMismatch,
    KeyDisabled,
    KeyExpired,
    KeyRecord,
    KeyRevoked,
    KeyRing,
    ModelNotAllowed,
    Unauthenticated,
    generate_key,
)
from shared.identity.keys import KEY_ID_PATTERN, KEY_PATTERN, parse_duration_ms
from streamgate.client import hash_api_key
from streamgate.config import ConfigError, Settings, key_hmac_secret, load_settings

SECRET = b"s" * 32
NOW = 1_800_000_000_000


def _ring_with(**over: object) -> tuple[KeyRing, KeyRecord, str]:
    ring = KeyRing(SECRET)
    key_id, raw = generate_key()
    fields: dict[str, object] = {
        "id": key_id, "hmac": ring.stored_hmac(raw), "team": "search", "project": "ranker",
        "status": "active",
        "created_at": NOW - 1000, "created_by": "test", "updated_at": NOW - 1000, "models": ("gpt-4o*",),
        "rpm": 10}
    fields.update(over)
    record = KeyRecord(**fields)  # type: ignore[arg-type]
    ring.apply(record)
    return ring, record, raw


def test_keys_are_long_random_and_recognisable() -> None:
    keys = {generate_key() for _ in range(200)}
    assert len({k for _, k in keys}) == 200 and len({i for i, _ in keys}) == 200
    for key_id, raw in keys:
        assert KEY_PATTERN.fullmatch(raw) and KEY_ID_PATTERN.fullmatch(key_id)
        assert key_id not in raw


def test_a_valid_key_authenticates_raw_and_by_hash() -> None:
    ring, record, raw = _ring_with()
    who = ring.authenticate_raw(raw, NOW)
    assert (who.key_id, who.team, who.project, who.rpm) == (record.id, "search", "ranker", 10)
    assert ring.authenticate_hash(hash_api_key(raw), NOW) == who
    assert who.budget_scope == f"search/{record.id}"


def test_the_stored_hash_is_keyed_not_a_bare_hash() -> None:
    _, record, raw = _ring_with()
    assert record.hmac not in (hash_api_key(raw), hash_api_key(raw).removeprefix("sha256:"))
    other = KeyRing(b"t" * 32)
    other.apply(record)
    with pytest.raises(Unauthenticated):  # the same table under another secret authenticates nobody
        other.authenticate_raw(raw, NOW)


@pytest.mark.parametrize(("over", "error", "code"), [
    ({"status": "revoked"}, KeyRevoked, "key_revoked"),
    ({"status": "disabled"}, KeyDisabled, "key_disabled"),
    ({"expires_at": NOW}, KeyExpired, "key_expired"),
    ({"grace_until": NOW - 1}, KeyRevoked, "key_revoked"),
])
def test_refusals_carry_their_reason_code(over: dict[str, object], error: type[Exception], code: str) -> None:
    ring, _, raw = _ring_with(**over)
    with pytest.raises(error) as caught:
        ring.authenticate_raw(raw, NOW)
    assert getattr(caught.value, "reason_code", None) == code
    assert raw not in str(caught.value) and hash_api_key(raw) not in str(caught.value)


def test_unknown_and_malformed_keys_are_unauthenticated() -> None:
    ring, _, _ = _ring_with()
    for attempt in ("", "sg-made-up", generate_key()[1]):
        with pytest.raises(Unauthenticated):
            ring.authenticate_raw(attempt, NOW)
    with pytest.raises(Unauthenticated):
        ring.authenticate_hash("sk-raw-key-in-the-hash-field", NOW)


def test_grace_period_keeps_a_rotated_key_valid_until_it_ends() -> None:
    ring, _, raw = _ring_with(grace_until=NOW + 60_000)
    assert ring.authenticate_raw(raw, NOW).team == "search"
    with pytest.raises(KeyRevoked):
        ring.authenticate_raw(raw, NOW + 60_000)


def test_a_later_state_replaces_the_earlier_and_a_tombstone_forgets() -> None:
    ring, record, raw = _ring_with()
    ring.apply(record.evolve(status="revoked"))
    with pytest.raises(KeyRevoked):
        ring.authenticate_raw(raw, NOW)
    ring.forget(record.id)
    with pytest.raises(Unauthenticated):
        ring.authenticate_raw(raw, NOW)
    assert ring.get(record.id) is None and len(ring) == 0


def test_owner_and_model_checks() -> None:
    ring, _, raw = _ring_with()
    who = ring.authenticate_raw(raw, NOW)
    who.check_owner("search", "ranker")
    who.check_owner(None, None)
    with pytest.raises(IdentityMismatch) as caught:
        who.check_owner("research", "ranker")
    assert caught.value.reason_code == "identity_mismatch" and caught.value.http_status == 403
    with pytest.raises(IdentityMismatch):
        who.check_owner("search", "query-rewrite")
    who.check_model("gpt-4o-mini")
    with pytest.raises(ModelNotAllowed):
        who.check_model("claude-3-5-sonnet")


def test_records_round_trip_through_the_avro_schema() -> None:
    _, record, _ = _ring_with(max_budget_usd=12.5, expires_at=NOW + 5, rotated_from="key_0123456789abcdef")
    codec = make_codec("keys", "ApiKey")
    assert KeyRecord.from_event(codec.decode(codec.encode(record.to_event()))) == record


def test_durations() -> None:
    assert parse_duration_ms("30d") == 30 * 86_400_000 and parse_duration_ms("1h") == 3_600_000
    with pytest.raises(ValueError, match="duration"):
        parse_duration_ms("soon")


def _settings(tmp_path: Path, env: dict[str, str], **identity: object) -> Settings:
    config = tmp_path / "c.yaml"
    import yaml

    config.write_text(yaml.safe_dump({"state_dir": str(tmp_path / "state"), "identity": identity}))
    return load_settings(config, env=env)


def test_the_secret_comes_from_the_environment_then_a_file_then_a_generated_0600_file(tmp_path: Path) -> None:
    from_env = _settings(tmp_path, {"STREAMGATE_KEY_SECRET": "e" * 40})
    assert key_hmac_secret(from_env) == b"e" * 40
    assert "eeee" not in repr(from_env)
    (tmp_path / "secret").write_text("f" * 40 + "\n")
    assert key_hmac_secret(_settings(tmp_path, {}, hmac_secret_file=str(tmp_path / "secret"))) == b"f" * 40
    generated = _settings(tmp_path, {})
    first = key_hmac_secret(generated)
    path = generated.state_dir / "identity" / "hmac.secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(first) >= 32
    assert key_hmac_secret(generated) == first, "the generated secret is kept, not regenerated"
    with pytest.raises(ConfigError, match="shorter"):
        key_hmac_secret(_settings(tmp_path, {"STREAMGATE_KEY_SECRET": "short"}))
    with pytest.raises(ConfigError, match="does not exist"):
        key_hmac_secret(_settings(tmp_path, {}, hmac_secret_file=str(tmp_path / "missing")))
