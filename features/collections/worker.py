"""`streamgate rag worker`: the indexer process, following the policy live (new collections)."""

from __future__ import annotations

import logging

from features.collections.indexer import C, RagIndexer
from shared.policy.config import load_policy
from shared.policy.holder import PolicyFollower, PolicyHolder
from streamgate.config import Settings
from streamgate.gc_tuning import freeze_startup_heap
from streamgate.kafka.stranded import exit_when_stranded
from streamgate.observability import serve_metrics


def run_indexer(settings: Settings, *, instance: str = "0", metrics_port: int | None = None,
                idle_exit_s: float | None = None) -> dict[str, int]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    holder = PolicyHolder(load_policy())
    follower = PolicyFollower(settings, holder, role="rag")
    follower.start()
    heartbeat = serve_metrics(settings, C, metrics_port if metrics_port is not None else 0)
    indexer = RagIndexer(settings, holder, instance=instance, heartbeat=heartbeat)
    freeze_startup_heap()
    try:
        with exit_when_stranded():
            counts = indexer.run(idle_exit_s=idle_exit_s)
    finally:
        indexer.close()
        follower.stop()
        heartbeat.stop()
    logging.getLogger("streamgate.rag").info("stopped: %s", counts)
    return counts
