"""Run one fused gateway worker (`streamgate gateway worker`): live policy, keys and usage, clean stop."""

from __future__ import annotations

import logging
from collections.abc import Callable

from apps.gateway.fused import FusedGateway
from gateway_consumer.worker import run_or_exit
from streamgate.config import Settings
from streamgate.observability import serve_metrics
from streams.pipeline import RequestPathDeps
from streams.worker import declare_claims_topic, live_deps


def run_gateway(settings: Settings, *, instance: str = "0", metrics_port: int | None = None,
                wire: Callable[[Settings, RequestPathDeps], None] | None = None) -> None:
    """`wire`: as for the request-path worker (the feature store's readers, RAG collections)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    declare_claims_topic(settings)
    with live_deps(settings, wire) as deps:
        heartbeat = serve_metrics(settings, "dispatcher", metrics_port)  # it stands in for the dispatcher
        run_or_exit(FusedGateway(settings, deps, instance=instance, heartbeat=heartbeat, freeze_heap=True),
                    heartbeat)
