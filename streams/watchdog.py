"""Exit when the request path's consumer group is stable but owns none of its partitions.

Found by `streamgate chaos`: a faust worker that joins its group while the broker is restarting can be
handed an assignment built from metadata that lists none of its topics ("Ignoring missing topic"); the
group then stays stable with every partition unowned and requests wait forever. No later metadata
refresh repairs it. Exiting lets the supervisor start the worker again, which joins with good metadata.
"""

from __future__ import annotations

import logging
import os
import threading

from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

from streamgate.config import Settings
from streamgate.kafka.clients import admin_config

log = logging.getLogger(__name__)


def owned_partitions(admin: AdminClient, group: str) -> int | None:
    """Partitions assigned across the stable group's members; None while it is not stable (rebalancing,
    empty) or cannot be described."""
    try:
        description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    except Exception:  # the broker may be away; the next round asks again
        return None
    if description.state != ConsumerGroupState.STABLE or not description.members:
        return None
    return sum(len(m.assignment.topic_partitions) for m in description.members)


class AssignmentWatchdog(threading.Thread):
    def __init__(self, settings: Settings, group: str, every_s: float = 10.0, strikes: int = 3) -> None:
        super().__init__(name="assignment-watchdog", daemon=True)
        self.group, self.every_s, self.strikes = group, every_s, strikes
        self.admin = AdminClient(admin_config(settings, role="streams"))
        self.stopped = threading.Event()

    def run(self) -> None:
        empty = 0
        while not self.stopped.wait(self.every_s):
            owned = owned_partitions(self.admin, self.group)
            empty = empty + 1 if owned == 0 else 0
            if empty >= self.strikes:
                log.error("consumer group %s is stable but owns no partitions (joined while the broker was "
                          "restarting); exiting so that the supervisor restarts this worker", self.group)
                os._exit(3)

    def stop(self) -> None:
        self.stopped.set()
