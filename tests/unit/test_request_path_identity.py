"""Authentication in the request path (streams/identity/), in memory: what each kind of caller gets, and
that nothing after authentication names the caller by its key hash."""

from __future__ import annotations

import random
from typing import Any

import pytest

from schemas.snapshots import UsageSnapshot
from schemas.topics import Topic
from shared.identity import KeyRecord, KeyRing, generate_key
from shared.policy.config import load_policy
from shared.policy.holder import PolicyHolder
from streamgate.client import hash_api_key
from streamgate.config import load_settings
from streams.claims import BatchedClaims
from streams.io import Output, StageIO
from streams.pipeline import RequestPath, RequestPathDeps
from tests.unit.test_request_path_rules import event

NOW = 1_800_000_000_000
SECRET = b"x" * 32


class FixedUsage:
    def __init__(self, **counts: int) -> None:
        self.snapshot = UsageSnapshot(**counts)
        self.scopes: list[str] = []

    def usage(self, scope: str, now_ms: int) -> UsageSnapshot:
        self.scopes.append(scope)
        return self.snapshot


def _key(ring: KeyRing, team: str = "search", project: str = "ranker", **over: Any) -> tuple[str, str]:
    key_id, raw = generate_key()
    fields: dict[str, Any] = {"id": key_id, "hmac": ring.stored_hmac(raw), "team": team, "project": project,
                              "status": "active", "created_at": NOW, "created_by": "t", "updated_at": NOW}
    ring.apply(KeyRecord(**(fields | over)))
    return key_id, raw


def _run(ring: KeyRing, usage: Any = None, **over: Any) -> dict[Topic, list[dict[str, Any]]]:
    io = StageIO(load_settings())
    deps = RequestPathDeps(policy=PolicyHolder(load_policy()), rng=random.Random(1), keys=ring)
    if usage is not None:
        deps.usage = usage
    raw = io.codecs[Topic.REQUESTS].encode(event(**over))
    claims = BatchedClaims({}, 600_000)
    outputs: list[Output] = RequestPath(io, deps).process(raw, b"k", 0, 1, claims.duplicate, NOW)
    by_name = {name: t for t, name in io.names.items()}
    out: dict[Topic, list[dict[str, Any]]] = {}
    for o in outputs:
        topic = by_name[o.topic]
        out.setdefault(topic, []).append(io.codecs[topic].decode(o.value or b""))
    return out


def _reason(out: dict[Topic, list[dict[str, Any]]]) -> str:
    [response] = out[Topic.REJECTED]
    return str(response["reason_code"])


def test_a_valid_key_is_routed_and_named_by_its_public_id_downstream() -> None:
    ring = KeyRing(SECRET)
    key_id, raw = _key(ring)
    out = _run(ring, api_key_id=hash_api_key(raw))
    [routed] = out[Topic.ROUTED]
    [guarded] = out[Topic.GUARDED]
    assert routed["api_key_id"] == key_id == guarded["api_key_id"]
    assert hash_api_key(raw) not in repr(out)


@pytest.mark.parametrize(("over", "code"), [
    ({"status": "revoked"}, "key_revoked"),
    ({"status": "disabled"}, "key_disabled"),
    ({"expires_at": NOW - 1}, "key_expired"),
    ({"grace_until": NOW - 1}, "key_revoked"),
])
def test_refused_keys_are_rejected_with_their_reason(over: dict[str, Any], code: str) -> None:
    ring = KeyRing(SECRET)
    _, raw = _key(ring, **over)
    out = _run(ring, api_key_id=hash_api_key(raw))
    assert _reason(out) == code and Topic.ROUTED not in out and Topic.GUARDED not in out
    assert out[Topic.DEADLETTER][0]["stage"] == "authenticate"


def test_an_unknown_key_is_unauthenticated_and_its_hash_goes_no_further_than_the_dead_letter() -> None:
    ring = KeyRing(SECRET)
    _key(ring)
    made_up = hash_api_key("sg-made-up")
    out = _run(ring, api_key_id=made_up)
    assert _reason(out) == "unauthenticated"
    assert out[Topic.REJECTED][0]["api_key_id"] == "anonymous"
    assert Topic.AUDIT not in out, "unknown keys are not audited (noise an attacker controls)"
    assert made_up not in repr(out[Topic.REJECTED])


def test_another_teams_key_is_an_audited_identity_mismatch() -> None:
    ring = KeyRing(SECRET)
    key_id, raw = _key(ring, team="research", project="evals")
    out = _run(ring, api_key_id=hash_api_key(raw))  # the request names search/ranker
    assert _reason(out) == "identity_mismatch"
    [audit] = out[Topic.AUDIT]
    assert audit["actor"] == key_id and "identity_mismatch" in audit["reason"]
    other_project = _key(ring, team="search", project="query-rewrite")[1]
    assert _reason(_run(ring, api_key_id=hash_api_key(other_project))) == "identity_mismatch"


def test_the_keys_model_globs_restrict_models() -> None:
    ring = KeyRing(SECRET)
    _, raw = _key(ring, models=("claude-*",))
    out = _run(ring, api_key_id=hash_api_key(raw))  # asks for gpt-4o-mini
    assert _reason(out) == "access_denied" and "may not use" in out[Topic.REJECTED][0]["message"]


def test_the_keys_rpm_and_monthly_budget_are_enforced_on_its_own_usage() -> None:
    ring = KeyRing(SECRET)
    key_id, raw = _key(ring, rpm=5)
    usage = FixedUsage(requests_last_minute=5)
    out = _run(ring, usage, api_key_id=hash_api_key(raw))
    assert _reason(out) == "budget_exceeded" and f"search/{key_id}" in usage.scopes
    assert Topic.ROUTED in _run(ring, FixedUsage(requests_last_minute=3), api_key_id=hash_api_key(raw))
    _, spender = _key(ring, max_budget_usd=2.0)
    assert _reason(_run(ring, FixedUsage(spend_month_nanousd=2_000_000_001),
                        api_key_id=hash_api_key(spender))) == "budget_exceeded"
    assert Topic.ROUTED in _run(ring, FixedUsage(spend_month_nanousd=1_000_000_000),
                                api_key_id=hash_api_key(spender))
