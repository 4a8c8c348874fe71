"""Make a cluster's topics match the declarative spec: create, alter what is safe, report the rest.

Idempotent by construction: every action is computed from a diff of the spec against what the cluster
describes, so a second run finds nothing to do.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ClusterMetadata,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from schemas.topics import TopicSpec, load_topic_specs
from streamgate.config import Role, Settings
from streamgate.kafka.acls import AclReport, apply_acls, drop_acls
from streamgate.kafka.clients import admin_client


@dataclass(frozen=True)
class Drift:
    topic: str
    what: str
    reason: str


@dataclass
class ApplyReport:
    created: list[str] = field(default_factory=list)
    updated: list[tuple[str, str]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    drift: list[Drift] = field(default_factory=list)
    dry_run: bool = False

    def summary(self) -> str:
        verb = "would create" if self.dry_run else "created"
        return (f"{verb} {len(self.created)}, updated {len(self.updated)}, "
                f"unchanged {len(self.unchanged)}, drift {len(self.drift)}")


def _admin(settings: Settings, role: Role) -> AdminClient:
    return admin_client(settings, role=role, client_id="streamgate-topics")  # type: ignore[no-any-return]


def apply_spec(settings: Settings, *, dry_run: bool = False) -> tuple[ApplyReport, AclReport]:
    """The whole spec under the deployment's prefix: topics (schemas/topics.yaml), then SCRAM users and
    ACLs (schemas/principals.yaml). `streamgate topics apply`, the demo, benches and tests all use it."""
    topics = apply_topics(settings, load_topic_specs(partitions=settings.kafka.partitions),
                          prefix=settings.kafka.topic_prefix, dry_run=dry_run)
    others = ([p for p in deployments(settings) if p != settings.kafka.topic_prefix]
              if settings.kafka.security.enabled else [])  # without ACLs there is no drift to tell apart
    return topics, apply_acls(settings, _admin(settings, "admin"), dry_run=dry_run, others=others)


def drop_prefix(settings: Settings, timeout_s: float = 60.0) -> int:
    """Delete every topic under the deployment's prefix and its ACLs: a benchmark or test deployment
    torn down, so a long-lived broker does not accumulate thousands of idle partitions (each costs the
    broker periodic work: high-watermark checkpoints, ISR checks). Refuses an empty prefix. Returns the
    number of topics deleted."""
    if not settings.kafka.topic_prefix:
        raise ValueError("refusing to drop the topics of a deployment without a topic prefix")
    admin = _admin(settings, "admin")
    names = topics_under(settings, timeout_s)
    if names:
        deleting = admin.delete_topics(names, operation_timeout=timeout_s, request_timeout=timeout_s)
        for fut in deleting.values():
            fut.result()
    drop_acls(settings, admin, timeout_s)
    return len(names)


def topics_under(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Every topic on the cluster under the deployment's prefix, the spec's and any other."""
    prefix = settings.kafka.topic_prefix
    return sorted(t for t in _admin(settings, "admin").list_topics(timeout=timeout_s).topics
                  if t.startswith(prefix))


def deployments(settings: Settings, timeout_s: float = 30.0) -> dict[str, int]:
    """The deployments on the cluster: topic prefix -> how many of the spec's topics it has ("" is the
    unprefixed one). A benchmark, test or chaos run is a prefix; left on a long-lived broker, its idle
    partitions and ACLs cost the broker work on every request (`streamgate topics drop`)."""
    names = sorted((s.name for s in load_topic_specs()), key=len, reverse=True)  # longest suffix first
    found: dict[str, int] = {}
    for topic in _admin(settings, "admin").list_topics(timeout=timeout_s).topics:
        for name in names:
            if topic.endswith(name):
                prefix = topic[:-len(name)]
                found[prefix] = found.get(prefix, 0) + 1
                break
    return found


def apply_topics(settings: Settings, specs: Iterable[TopicSpec], *, prefix: str = "",
                 dry_run: bool = False, timeout_s: float = 30.0, role: Role = "admin") -> ApplyReport:
    """Create missing topics, raise partitions, set configs; report what it will not change.
    `role`: who asks (a stage creating its own changelog topics does so as itself)."""
    admin = _admin(settings, role)
    report = ApplyReport(dry_run=dry_run)
    metadata = admin.list_topics(timeout=timeout_s)
    existing = metadata.topics
    brokers = cluster_size(metadata)
    wanted = {prefix + s.name: s.on_cluster(brokers) for s in specs}

    missing = [name for name in wanted if name not in existing]
    if missing and not dry_run:
        new = [NewTopic(name, wanted[name].partitions, wanted[name].replication_factor,
                        config=wanted[name].topic_config()) for name in missing]
        for fut in admin.create_topics(new, operation_timeout=timeout_s).values():
            try:
                fut.result()
            except KafkaException as exc:
                if exc.args[0].code() != 36:  # TOPIC_ALREADY_EXISTS: a concurrent apply won the race
                    raise
        _wait_visible(admin, missing, timeout_s)
    report.created.extend(missing)

    present = [name for name in wanted if name in existing]
    if not present:
        return report
    configs = _describe_configs(admin, present, timeout_s)
    for name in present:
        spec, meta = wanted[name], existing[name]
        changes: list[str] = []
        actual_parts = len(meta.partitions)
        if actual_parts < spec.partitions:
            changes.append(f"partitions {actual_parts} -> {spec.partitions}")
            if not dry_run:
                admin.create_partitions([NewPartitions(name, spec.partitions)])[name].result()
        elif actual_parts > spec.partitions:
            report.drift.append(Drift(name, f"partitions {actual_parts} > spec {spec.partitions}",
                                      "Kafka cannot remove partitions; recreate the topic to shrink it"))
        replicas = {len(p.replicas) for p in meta.partitions.values()}
        if replicas and replicas != {spec.replication_factor}:
            report.drift.append(Drift(name, f"replication {sorted(replicas)} != {spec.replication_factor}",
                                      "changing replication needs a partition reassignment plan"))
        to_set = {k: v for k, v in spec.topic_config().items() if configs[name].get(k) != v}
        if to_set:
            changes.extend(f"{k} {configs[name].get(k)} -> {v}" for k, v in sorted(to_set.items()))
            if not dry_run:
                _alter_configs(admin, name, to_set, timeout_s)
        if changes:
            report.updated.append((name, "; ".join(changes)))
        else:
            report.unchanged.append(name)
    return report


def cluster_size(metadata: ClusterMetadata) -> int:
    """How many brokers the cluster has: those alive, or more when a partition's replica list shows a
    broker that is down just now (a topic created while one broker restarts is still replicated 3x)."""
    replicas = (len(p.replicas) for t in metadata.topics.values() for p in t.partitions.values())
    return max(len(metadata.brokers), max(replicas, default=1))


def _wait_visible(admin: AdminClient, names: list[str], timeout_s: float) -> None:
    """Creation is acknowledged before metadata shows it with leaders; callers expect to use it at once."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        topics = admin.list_topics(timeout=timeout_s).topics
        if all(n in topics and topics[n].partitions and topics[n].error is None
               and all(p.leader >= 0 and p.error is None for p in topics[n].partitions.values())
               for n in names):
            return
        time.sleep(0.1)
    raise TimeoutError(f"topics {names} were created but are not visible after {timeout_s:.0f} s")


def _describe_configs(admin: AdminClient, names: list[str], timeout_s: float) -> dict[str, dict[str, str]]:
    resources = [ConfigResource(ConfigResource.Type.TOPIC, n) for n in names]
    out: dict[str, dict[str, str]] = {}
    for res, fut in admin.describe_configs(resources, request_timeout=timeout_s).items():
        out[res.name] = {k: v.value for k, v in fut.result().items()}
    return out


def _alter_configs(admin: AdminClient, name: str, values: dict[str, str], timeout_s: float) -> None:
    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in values.items()]
    res = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=entries)
    for fut in admin.incremental_alter_configs([res], request_timeout=timeout_s).values():
        fut.result()


def describe_topics(settings: Settings, specs: Iterable[TopicSpec], *, prefix: str = "",
                    timeout_s: float = 30.0) -> list[tuple[TopicSpec, int | None]]:
    """Each spec with the partition count the cluster has (None when the topic is missing)."""
    existing = _admin(settings, "admin").list_topics(timeout=timeout_s).topics
    return [(s, len(existing[prefix + s.name].partitions) if prefix + s.name in existing else None)
            for s in specs]
