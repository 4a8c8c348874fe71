"""Run one dispatcher process (`streamgate dispatch worker`): live policy, logs, clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import logging

from gateway_consumer.dispatch import Dispatcher
from streamgate.config import Settings
from streamgate.observability import serve_metrics
from streams.policy.config import load_policy
from streams.policy.holder import PolicyFollower, PolicyHolder


def run_dispatcher(settings: Settings, *, instance: str = "0", metrics_port: int | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    holder = PolicyHolder(load_policy())
    follower = PolicyFollower(settings, holder)
    follower.start()
    heartbeat = serve_metrics(settings, "dispatcher", metrics_port)
    dispatcher = Dispatcher(settings, lambda: holder.policy, instance=instance, heartbeat=heartbeat,
                            freeze_heap=True)
    try:
        asyncio.run(dispatcher.run())
    finally:
        follower.stop()
        heartbeat.stop()
        logging.getLogger("streamgate.dispatch").info("stopped: %s", dict(dispatcher.stats.counts))
