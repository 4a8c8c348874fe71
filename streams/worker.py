"""Run the request-path agents as a faust worker process (`streamgate streams worker`)."""

from __future__ import annotations

import logging

from aggregation.usage import LiveUsage
from streamgate.config import Settings
from streams.app import RequestPathDeps, create_app
from streams.guardrails.budgets import AdmittedUsage
from streams.policy.config import load_policy
from streams.policy.holder import PolicyFollower, PolicyHolder


def run_worker(settings: Settings, *, exactly_once: bool = False, web_port: int | None = None,
               loglevel: str = "warn") -> None:
    logging.basicConfig(level=logging.INFO)
    holder = PolicyHolder(load_policy())
    follower = PolicyFollower(settings, holder)
    follower.start()
    usage = LiveUsage(settings).start()  # budgets read what the aggregator counted
    deps = RequestPathDeps(policy=holder, usage=AdmittedUsage(usage))
    app = create_app(settings, deps, exactly_once=exactly_once, web_port=web_port)
    try:
        from faust.worker import Worker

        Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
    finally:
        follower.stop()
        usage.close()
