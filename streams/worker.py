"""Run the request path as a worker process (`streamgate streams worker`), on the configured engine."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import faust

from schemas.topics import TopicSpec, load_topic_specs
from shared.identity import KeyRing
from shared.policy.config import load_policy
from shared.policy.holder import PolicyFollower, PolicyHolder
from shared.usage.live import LiveUsage
from streamgate.config import Settings
from streamgate.gc_tuning import freeze_startup_heap
from streamgate.kafka.topics import apply_topics
from streamgate.observability import Heartbeat, serve_metrics
from streamgate.observability.metrics import set_lag
from streams.app import RequestPathDeps, create_app
from streams.guardrails.budgets import AdmittedUsage
from streams.loop import TransactionalRequestPath, claims_topic
from streams.metrics import C, faust_lag
from streams.watchdog import AssignmentWatchdog


def declare_changelogs(app: faust.App, settings: Settings) -> None:
    """Create the tables' changelog topics before any agent runs: faust declares them concurrently with
    the first table write, and a write that wins the race finds the topic without its partitions and
    fails with PartitionsMismatch (seen in a test run)."""
    replication = load_topic_specs()[0].replication_factor  # as the spec's own topics
    specs = [TopicSpec(name=table.changelog_topic.get_topic_name(), value_schema="faust-table",
                       partitions=table.partitions or 6, replication_factor=replication, retention_ms=-1,
                       cleanup_policy="compact") for table in app.tables.values()]
    apply_topics(settings, specs, role="streams")


def watch(app: faust.App, heartbeat: Heartbeat, interval_s: float = 2.0) -> None:
    """A faust timer: beats while the worker's event loop runs, and publishes the agents' lag."""
    sources = {t for agent in app.agents.values() for t in agent.channel.topics}

    @app.timer(interval=interval_s)  # type: ignore[untyped-decorator]
    async def _alive() -> None:
        heartbeat.beat()
        set_lag(C, faust_lag(app, sources))


def declare_claims_topic(settings: Settings) -> None:
    """The dedup claims' changelog, partitioned as `requests` (a claim lands on its request's partition)."""
    spec = next(s for s in load_topic_specs(partitions=settings.kafka.partitions) if s.name == "requests")
    apply_topics(settings, [TopicSpec(
        name=claims_topic(settings), value_schema="dedup-claims", partitions=spec.partitions,
        replication_factor=spec.replication_factor, retention_ms=-1, cleanup_policy="compact")],
        role="streams")


def _run_transactional(settings: Settings, deps: RequestPathDeps, heartbeat: Heartbeat,
                       instance: str) -> None:
    declare_claims_topic(settings)
    loop = TransactionalRequestPath(settings, deps, instance=instance, heartbeat=heartbeat)
    freeze_startup_heap()
    try:
        events = loop.run()
    except SystemExit as exc:  # a transaction failed or the group was lost: the supervisor restarts us
        # at once: a normal exit can hang in the Kafka clients' destructors on a fenced transaction
        # (seen with the dispatcher, gateway_consumer/worker.py)
        logging.shutdown()
        os._exit(exc.code if isinstance(exc.code, int) else 3)
    logging.getLogger("streamgate.streams").info(
        "stopped after %d events; %d transactions committed in %.1f s", events, loop.commits, loop.commit_s)


def _run_faust(settings: Settings, deps: RequestPathDeps, heartbeat: Heartbeat, exactly_once: bool,
               web_port: int | None, loglevel: str) -> None:
    from faust.worker import Worker

    app = create_app(settings, deps, app_id=settings.streams.group_id, exactly_once=exactly_once,
                     web_port=web_port)
    declare_changelogs(app, settings)
    watch(app, heartbeat)
    worker = Worker(app, loglevel=loglevel, quiet=True)
    # faust's terminal spinner sets the root logger to DEBUG so it can spin on every record: every
    # aiokafka debug call then builds a LogRecord (10% of the worker's time in a profile)
    worker.spinner = None
    worker.execute_from_commandline()


def run_worker(settings: Settings, *, exactly_once: bool = False, web_port: int | None = None,
               loglevel: str = "warn", metrics_port: int | None = None, instance: str = "0",
               wire: Callable[[Settings, RequestPathDeps], None] | None = None) -> None:
    """`wire`: the composition layer's hook to plug other stages' readers (the feature store) into the
    request path's dependencies; the stage itself knows only their interfaces."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with live_deps(settings, wire) as deps:
        heartbeat = serve_metrics(settings, C, metrics_port)
        watchdog = AssignmentWatchdog(settings, settings.kafka.topic_prefix + settings.streams.group_id)
        watchdog.start()
        try:
            if settings.streams.engine == "transactions":
                _run_transactional(settings, deps, heartbeat, instance)
            else:
                _run_faust(settings, deps, heartbeat, exactly_once, web_port, loglevel)
        finally:
            watchdog.stop()
            heartbeat.stop()


@contextmanager
def live_deps(settings: Settings, wire: Callable[[Settings, RequestPathDeps], None] | None = None,
              ) -> Iterator[RequestPathDeps]:
    """The request path's dependencies, following the cluster while the block runs: the live policy
    (config topic), the API keys (keys topic) and, with `features.usage_source: live`, the usage the
    aggregator counted. `wire` is the composition layer's hook (see `run_worker`)."""
    holder = PolicyHolder(load_policy())
    follower = PolicyFollower(settings, holder, role="streams")
    follower.start()
    # every request is authenticated against the keys topic, followed in memory (streams/identity/)
    keys = KeyRing.for_settings(settings) if settings.identity.enforce else None
    key_follower = keys.follow(settings, role="streams") if keys is not None else None
    deps = RequestPathDeps(policy=holder, keys=keys)
    live = LiveUsage(settings, role="streams").start() if settings.features.usage_source == "live" else None
    if live is not None:
        deps.usage = AdmittedUsage(live)  # budgets read what the aggregator counted
    if wire is not None:
        wire(settings, deps)
    try:
        yield deps
    finally:
        follower.stop()
        if key_follower is not None:
            key_follower.stop()
        if live is not None:
            live.close()
