"""Run one dispatcher process (`streamgate dispatch worker`): live policy, logs, clean stop on SIGTERM."""

from __future__ import annotations

import logging
import os

from gateway_consumer.dispatch import Dispatcher
from shared.policy.config import load_policy
from shared.policy.holder import PolicyFollower, PolicyHolder
from streamgate import eventloop
from streamgate.config import Settings
from streamgate.observability import Heartbeat, serve_metrics

log = logging.getLogger("streamgate.dispatch")


def run_dispatcher(settings: Settings, *, instance: str = "0", metrics_port: int | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    holder = PolicyHolder(load_policy())
    follower = PolicyFollower(settings, holder, role="dispatcher")
    follower.start()
    heartbeat = serve_metrics(settings, "dispatcher", metrics_port)
    dispatcher = Dispatcher(settings, lambda: holder.policy, instance=instance, heartbeat=heartbeat,
                            freeze_heap=True)
    run_or_exit(dispatcher, heartbeat)
    follower.stop()


def run_or_exit(dispatcher: Dispatcher, heartbeat: Heartbeat) -> None:
    """Run the loop until it stops; on any failure, exit the process at once (code 3).

    Fenced, or a transaction aborted: exit now so the supervisor restarts a clean instance. A normal exit
    hung here (found by `streamgate chaos` after a broker restart fenced the producers): the Kafka
    clients' destructors wait on the fenced transaction and the group, so nothing restarted."""
    try:
        eventloop.run(dispatcher.run(), dispatcher.settings.event_loop)
    except (Exception, SystemExit):
        log.exception("%s failed; exiting for a restart: %s", type(dispatcher).__name__,
                      dict(dispatcher.stats.counts))
        heartbeat.stop()
        logging.shutdown()
        os._exit(3)
    heartbeat.stop()
    log.info("stopped: %s", dict(dispatcher.stats.counts))
