"""Notice a group member that holds no partitions while its group says it should hold some.

After a broker restart `streamgate chaos` once left the lakehouse sink (static membership,
cooperative-sticky) with no partitions for the rest of the run: its coordinator connection had failed
the SASL handshake while the broker was starting, its session expired 45 s later, and it never got
partitions again; it polled happily and consumed nothing (the same shape as
confluentinc/confluent-kafka-go#494). A member of a group with more members than partitions also holds
nothing, rightly, so holding nothing is not enough: once a member has held nothing for `after_s`, the
group's coordinator is asked, and the member is *stranded* when the group is not stable, when the
coordinator lists partitions for this member, or when a partition of the subscribed topics has no owner.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient

from streamgate.config import Role, Settings
from streamgate.kafka.clients import base_config
from streamgate.kafka.stuck import STUCK_EXIT

log = logging.getLogger("streamgate.kafka")


@dataclass(frozen=True)
class GroupView:
    """What a group's coordinator says, seen from one member."""

    stable: bool
    #: partitions the coordinator lists for this member's group.instance.id
    ours: int
    #: partitions of the subscribed topics that no member owns
    unowned: int

    def stranded(self) -> bool:
        """A member holding nothing is stranded unless the group is stable and every partition has an
        owner other than it."""
        return not self.stable or self.ours > 0 or self.unowned > 0


def group_view(admin: AdminClient, group: str, instance_id: str, topics: list[str],
               timeout_s: float = 10.0) -> GroupView:
    """Ask the coordinator of `group` (raises KafkaException when it cannot be asked)."""
    described = admin.describe_consumer_groups([group], request_timeout=timeout_s)[group].result()
    metadata = admin.list_topics(timeout=timeout_s)
    wanted = {(t, p) for t in topics if t in metadata.topics for p in metadata.topics[t].partitions}
    owned: set[tuple[str, int]] = set()
    ours = 0
    for member in described.members:
        held = {(tp.topic, tp.partition) for tp in member.assignment.topic_partitions}
        owned |= held
        if member.group_instance_id == instance_id:
            ours += len(held & wanted)
    return GroupView(described.state == ConsumerGroupState.STABLE, ours, len(wanted - owned))


class StrandedWatch:
    """Call :meth:`stranded` on every poll with whether the consumer holds partitions; it returns True
    (once per `after_s` at most) when the member has held none for `after_s` and the group says it is
    stranded. Asking costs two admin requests, made only while the member holds nothing."""

    def __init__(self, settings: Settings, *, role: Role, group: str, instance_id: str, topics: list[str],
                 after_s: float) -> None:
        self.settings, self.role, self.group, self.instance_id = settings, role, group, instance_id
        self.topics, self.after_s = topics, after_s
        self.empty_since: float | None = None
        self.admin: AdminClient | None = None

    def stranded(self, holding: bool, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if holding:
            self.empty_since = None
            return False
        if self.empty_since is None:
            self.empty_since = now
        if now - self.empty_since < self.after_s:
            return False
        self.empty_since = now  # ask again after another after_s
        try:
            view = self._view()
        except KafkaException as exc:  # the coordinator cannot be asked (broker away): not a verdict
            log.warning("%s: holding no partitions for %.0f s and the group cannot be described: %s",
                        self.group, self.after_s, exc)
            return False
        if view.stranded():
            log.error("%s: member %s has held no partitions for %.0f s and is stranded: %s", self.group,
                      self.instance_id, self.after_s, view)
        return view.stranded()

    def _view(self) -> GroupView:
        if self.admin is None:
            self.admin = AdminClient(base_config(self.settings, f"{self.group}-watch", role=self.role))
        return group_view(self.admin, self.group, self.instance_id, self.topics)


class StrandedMemberError(RuntimeError):
    """A consumer group member is stranded (see the module docstring): restart the process."""


@contextmanager
def exit_when_stranded() -> Iterator[None]:
    """Run a process's consume loop; when it raises StrandedMemberError, exit at once (STUCK_EXIT) so the
    supervisor restarts it. At once: a stranded consumer's close() may wait on the same broken group."""
    try:
        yield
    except StrandedMemberError as exc:
        log.error("%s; exiting for a restart", exc)
        logging.shutdown()
        os._exit(STUCK_EXIT)
