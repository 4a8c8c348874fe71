"""What the request-path worker exports: per stage and batch, events in, outputs per topic, batch time;
and, from a faust timer, liveness and consumer lag (aiokafka's cached high-water marks, no broker call)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import faust

from schemas.topics import Topic
from streamgate.observability.metrics import ERRORS, EVENTS_IN, EVENTS_OUT, LATENCY
from streams.io import Output

C = "streams_worker"


class StageMeter:
    """One stage's children, looked up once; `batch()` is called once per batch."""

    def __init__(self, stage: str, names: Mapping[Topic, str]) -> None:
        self.stage = stage
        self.logical = {physical: str(topic) for topic, physical in names.items()}
        self.dead = names[Topic.DEADLETTER]
        self.events_in = EVENTS_IN.labels(C, stage)
        self.seconds = LATENCY.labels(C, stage)
        self.out: dict[str, Any] = {}

    def batch(self, events: int, outputs: Sequence[Output], seconds: float) -> None:
        self.events_in.inc(events)
        self.seconds.observe(seconds)
        for topic, n in Counter(o.topic for o in outputs).items():
            if topic not in self.out:
                self.out[topic] = EVENTS_OUT.labels(C, self.stage, self.logical.get(topic, topic))
            self.out[topic].inc(n)
            if topic == self.dead:
                ERRORS.labels(C, self.stage, "dead_letter").inc(n)


def faust_lag(app: faust.App, sources: set[str]) -> dict[tuple[str, int], int]:
    """Per assigned source partition: high-water mark minus the next offset to read."""
    consumer: Any = app.consumer
    lags: dict[tuple[str, int], int] = {}
    for tp in consumer.assignment():
        if tp.topic not in sources:
            continue
        high, read = consumer.highwater(tp), consumer._read_offset.get(tp)
        if high is not None and read is not None:
            lags[(tp.topic, tp.partition)] = int(high) - (int(read) + 1)
    return lags
