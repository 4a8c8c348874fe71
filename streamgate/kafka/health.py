"""What a replicated cluster's operator looks at: which broker leads which partitions, and which
partitions have fewer in-sync replicas than replicas (under-replicated) or no leader (offline).

Read from one metadata request as the admin principal, so it works on the local cluster and on any
external one alike.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from streamgate.config import Settings
from streamgate.kafka.clients import admin_client


@dataclass(frozen=True)
class PartitionHealth:
    topic: str
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]

    @property
    def under_replicated(self) -> bool:
        return len(self.isr) < len(self.replicas)

    @property
    def offline(self) -> bool:
        return self.leader < 0


@dataclass(frozen=True)
class ClusterHealth:
    brokers: tuple[int, ...]
    partitions: tuple[PartitionHealth, ...]

    @property
    def under_replicated(self) -> list[PartitionHealth]:
        return [p for p in self.partitions if p.under_replicated]

    @property
    def offline(self) -> list[PartitionHealth]:
        return [p for p in self.partitions if p.offline]

    @property
    def fully_replicated(self) -> bool:
        return not self.under_replicated and not self.offline

    def leaders(self, topics: Iterable[str] | None = None) -> Counter[int]:
        """How many partitions (of `topics`, or of all) each broker leads."""
        wanted = set(topics) if topics is not None else None
        return Counter(p.leader for p in self.partitions
                       if p.leader >= 0 and (wanted is None or p.topic in wanted))


def cluster_health(settings: Settings, timeout_s: float = 10.0) -> ClusterHealth:
    """Every partition of every topic with its leader, replicas and ISR, as the cluster reports them."""
    admin = admin_client(settings, role="admin", client_id="streamgate-health")
    metadata = admin.list_topics(timeout=timeout_s)
    partitions = tuple(
        PartitionHealth(name, p.id, p.leader, tuple(p.replicas), tuple(p.isrs))
        for name, topic in sorted(metadata.topics.items()) for p in topic.partitions.values())
    return ClusterHealth(tuple(sorted(metadata.brokers)), partitions)
