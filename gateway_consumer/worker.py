"""Run one dispatcher process (`streamgate dispatch worker`): live policy, logs, clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import logging

from gateway_consumer.dispatch import Dispatcher
from streamgate.config import Settings
from streams.policy.config import load_policy
from streams.policy.holder import PolicyFollower, PolicyHolder


def run_dispatcher(settings: Settings, *, instance: str = "0") -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    holder = PolicyHolder(load_policy())
    follower = PolicyFollower(settings, holder)
    follower.start()
    dispatcher = Dispatcher(settings, lambda: holder.policy, instance=instance, freeze_heap=True)
    try:
        asyncio.run(dispatcher.run())
    finally:
        follower.stop()
        logging.getLogger("streamgate.dispatch").info("stopped: %s", dict(dispatcher.stats.counts))
