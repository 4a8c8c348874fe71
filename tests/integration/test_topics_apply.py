"""Topics as code against the real broker: create, idempotence, safe changes, and drift it reports."""

from __future__ import annotations

import pytest

from schemas.topics import TopicSpec, load_topic_specs
from streamgate.config import Settings
from streamgate.kafka.topics import apply_topics, describe_topics

pytestmark = pytest.mark.kafka


def test_apply_creates_everything_then_is_idempotent(settings: Settings) -> None:
    specs = load_topic_specs()
    prefix = settings.kafka.topic_prefix
    dry = apply_topics(settings, specs, prefix=prefix, dry_run=True)
    assert len(dry.created) == len(specs) and dry.dry_run
    assert all(actual is None for _, actual in describe_topics(settings, specs, prefix=prefix))

    first = apply_topics(settings, specs, prefix=prefix)
    assert sorted(first.created) == sorted(prefix + s.name for s in specs)
    second = apply_topics(settings, specs, prefix=prefix)
    assert second.created == [] and second.updated == [] and second.drift == []
    assert sorted(second.unchanged) == sorted(first.created)
    assert [actual for _, actual in describe_topics(settings, specs, prefix=prefix)] == [
        s.partitions for s in specs]


def _one(spec: TopicSpec, **changes: object) -> list[TopicSpec]:
    return [spec.model_copy(update=changes)]


def test_safe_changes_are_applied_and_unsafe_ones_reported(settings: Settings) -> None:
    prefix = settings.kafka.topic_prefix
    base = next(s for s in load_topic_specs() if s.name == "audit").model_copy(update={"partitions": 2})
    apply_topics(settings, [base], prefix=prefix)

    grown = apply_topics(settings, _one(base, partitions=4, retention_ms=3_600_000), prefix=prefix)
    assert [name for name, _ in grown.updated] == [prefix + "audit"]
    assert "partitions 2 -> 4" in grown.updated[0][1] and "retention.ms" in grown.updated[0][1]
    assert apply_topics(settings, _one(base, partitions=4, retention_ms=3_600_000),
                        prefix=prefix).unchanged == [prefix + "audit"]

    shrink = apply_topics(settings, _one(base, partitions=3, retention_ms=3_600_000), prefix=prefix)
    assert len(shrink.drift) == 1 and "cannot remove partitions" in shrink.drift[0].reason
    compacted = apply_topics(settings, _one(base, partitions=4, retention_ms=3_600_000,
                                             cleanup_policy="compact"), prefix=prefix)
    assert "cleanup.policy delete -> compact" in compacted.updated[0][1]
    # a spec asking for 3 replicas gets as many as the cluster has brokers: no drift on a single broker
    replicated = apply_topics(settings, _one(base, partitions=4, retention_ms=3_600_000,
                                              cleanup_policy="compact", replication_factor=3), prefix=prefix)
    assert replicated.unchanged == [prefix + "audit"] and not replicated.drift
