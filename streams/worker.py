"""Run the request-path agents as a faust worker process (`streamgate streams worker`)."""

from __future__ import annotations

import logging

import faust

from aggregation.usage import LiveUsage
from schemas.topics import TopicSpec, load_topic_specs
from streamgate.config import Settings
from streamgate.kafka.topics import apply_topics
from streams.app import RequestPathDeps, create_app
from streams.guardrails.budgets import AdmittedUsage
from streams.policy.config import load_policy
from streams.policy.holder import PolicyFollower, PolicyHolder
from streams.watchdog import AssignmentWatchdog


def declare_changelogs(app: faust.App, settings: Settings) -> None:
    """Create the tables' changelog topics before any agent runs: faust declares them concurrently with
    the first table write, and a write that wins the race finds the topic without its partitions and
    fails with PartitionsMismatch (seen in a test run)."""
    replication = load_topic_specs()[0].replication_factor  # as the spec's own topics
    specs = [TopicSpec(name=table.changelog_topic.get_topic_name(), value_schema="faust-table",
                       partitions=table.partitions or 6, replication_factor=replication, retention_ms=-1,
                       cleanup_policy="compact") for table in app.tables.values()]
    apply_topics(settings.kafka.bootstrap(), specs)


def run_worker(settings: Settings, *, exactly_once: bool = False, web_port: int | None = None,
               loglevel: str = "warn") -> None:
    logging.basicConfig(level=logging.INFO)
    holder = PolicyHolder(load_policy())
    follower = PolicyFollower(settings, holder)
    follower.start()
    usage = LiveUsage(settings).start()  # budgets read what the aggregator counted
    deps = RequestPathDeps(policy=holder, usage=AdmittedUsage(usage))
    app = create_app(settings, deps, exactly_once=exactly_once, web_port=web_port)
    declare_changelogs(app, settings)
    watchdog = AssignmentWatchdog(settings, app.conf.id)
    watchdog.start()
    try:
        from faust.worker import Worker

        Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
    finally:
        watchdog.stop()
        follower.stop()
        usage.close()
