"""kill -9 of a request-path worker mid-stream: nothing is lost, and on the transactions engine nothing
is decided twice.

The transactions engine (the default) commits outputs, dedup claims and offsets in one transaction, so a
killed worker's open transaction is aborted and read_committed readers see every outcome exactly once.
The faust engine is at-least-once: replayed events may be processed again, so a request can be routed
twice; downstream consumers are idempotent by request id. faust's `exactly_once` mode (`--exactly-once`)
was tried with this same test and the restarted worker stalled in aiokafka ("Not in the middle of a
transaction"), as faust's tracker reports for this experimental mode; it is not relied on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Consumer

from apps.demo.processes import Components
from schemas import make_codec
from shared.traffic import workload
from streamgate.client import RequestProducer
from streamgate.config import Settings
from streamgate.kafka.clients import consumer_config
from tests.conftest import kafka_config

# Once failed (~1% of requests without an outcome): the dedup table's changelog was written with the raw
# serializer, so a restarted worker read garbage claims and dropped replays as duplicates. Fixed by JSON.
pytestmark = [pytest.mark.kafka, pytest.mark.slow]
N = 3000


def _start(settings: Settings, tmp_path: Path, engine: str, n: int,
           instance: str = "0") -> subprocess.Popen[bytes]:
    config = tmp_path / "streamgate.yaml"
    config.write_text(yaml.safe_dump({"state_dir": str(tmp_path / "state"), "kafka": {
        **kafka_config(settings)}}))
    args = [str(Path(sys.executable).parent / "streamgate"), "streams", "worker", "--config", str(config),
            "--engine", engine, "--instance", instance, "--metrics-port", "0"]
    with open(tmp_path / f"worker-{n}.log", "wb") as log:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)


def _outcomes(settings: Settings, topics: dict[str, str], expected: int, timeout_s: float,
              kinds: tuple[str, ...] = ("requests.routed", "requests.rejected"),
              routed: Counter[str] | None = None) -> Counter[str]:
    """Request id -> how many outcomes (routed or response), read_committed; `routed` gets the ids
    routed."""
    consumer = Consumer(consumer_config(settings, group_id=f"kill-{uuid.uuid4().hex[:6]}", role="admin"))
    consumer.subscribe([topics[k] for k in kinds])
    types = {"requests.routed": "RoutedRequest", "requests.rejected": "Response", "responses": "Response"}
    codecs = {topics[k]: make_codec(topics[k], types[k]) for k in kinds}
    counts: Counter[str] = Counter()
    deadline = time.monotonic() + timeout_s
    quiet_until = None
    while time.monotonic() < deadline:
        batch = consumer.consume(1000, timeout=0.5)
        for m in batch:
            if m.error() is None:
                request_id = codecs[m.topic() or ""].decode(m.value() or b"")["request_id"]
                counts[request_id] += 1
                if routed is not None and m.topic() == topics["requests.routed"]:
                    routed[request_id] += 1
        if len(counts) >= expected:
            quiet_until = quiet_until or time.monotonic() + 5  # then listen a little for duplicates
            if time.monotonic() > quiet_until:
                break
    consumer.close()
    return counts


# faust: known bug (deselected): after a kill -9 the restarted faust worker can stop processing some
# partitions (also found by `streamgate chaos`); it passed 5 of 6 runs this stop, failing once inside the
# full suite. The default engine does not depend on faust's consumer.
@pytest.mark.parametrize("engine", ["transactions", pytest.param("faust", marks=pytest.mark.known_bug)])
def test_kill_9_mid_stream_loses_nothing(settings: Settings, topics: dict[str, str], tmp_path: Path,
                                         engine: str, api_keys: dict[tuple[str, str], str]) -> None:
    first = _start(settings, tmp_path, engine, 1)
    sent = list(workload.requests(N, seed=5, keys=api_keys))
    with RequestProducer(settings) as producer:
        for r in sent:
            producer.send(r)
    # wait until the worker is visibly mid-stream, then kill it without warning
    routed_topic = topics["requests.routed"]
    probe = Consumer(consumer_config(settings, group_id=f"probe-{uuid.uuid4().hex[:6]}", role="admin")
                     | {"isolation.level": "read_uncommitted"})
    probe.subscribe([routed_topic])
    seen, deadline = 0, time.monotonic() + 120
    while seen < N // 5 and time.monotonic() < deadline:
        seen += sum(1 for m in probe.consume(500, timeout=0.5) if m.error() is None)
    probe.close()
    assert seen >= N // 5, "the worker never got going"
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    second = _start(settings, tmp_path, engine, 2)
    try:
        counts = _outcomes(settings, topics, N, timeout_s=240)
    finally:
        second.terminate()
        second.wait(30)
    ids = {r.request_id for r in sent}
    missing = ids - set(counts)
    assert not missing, f"{len(missing)} requests lost after kill -9"
    assert set(counts) == ids, "outcomes for requests that were never sent"
    doubled = [rid for rid, n in counts.items() if n > 1]
    if engine == "transactions":
        assert not doubled, f"{len(doubled)} of {N} requests decided twice after kill -9 (exactly-once)"
    print(f"{engine} after kill -9: {len(doubled)} of {N} requests processed twice, none lost")


def test_workers_joining_and_leaving_mid_stream_decide_every_request_once(
        settings: Settings, topics: dict[str, str], tmp_path: Path,
        api_keys: dict[tuple[str, str], str]) -> None:
    """Rebalances on the transactions engine: a second worker joins mid-stream (the first commits and
    hands over partitions, the second loads their claims), then the first stops; every request gets an
    outcome and none is routed twice, though a tenth are sent again under their id across the handovers.
    (A rejected request sent again is rejected again: validation runs before the dedup claim, so a
    caller may fix a request and resend it under its id. The dispatcher answers the id once.)"""
    sent = list(workload.requests(N, seed=8, keys=api_keys))
    resent = sent[::10]  # the same records again, later: duplicates to drop across owners
    first = _start(settings, tmp_path, "transactions", 1, instance="a")
    second = None
    try:
        with RequestProducer(settings) as producer:
            for n, r in enumerate(sent + resent, 1):
                producer.send(r)
                if n % 300 == 0:
                    producer.flush()
                    time.sleep(0.2)
                if n == N // 3:
                    second = _start(settings, tmp_path, "transactions", 2, instance="b")
                if n == 2 * N // 3:
                    first.terminate()  # a clean leave: commits, then its partitions move to the second
                    first.wait(30)
        routed: Counter[str] = Counter()
        counts = _outcomes(settings, topics, N, timeout_s=240, routed=routed)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(30)
    assert set(counts) == {r.request_id for r in sent}, "a request got no outcome"
    doubled = [rid for rid, n in routed.items() if n > 1]
    assert not doubled, f"{len(doubled)} of {len(routed)} routed requests routed twice across rebalances"
    assert len(routed) > N // 2


# Found by `streamgate chaos`: the request path was at-least-once, so a stream worker killed mid-stream
# replays the records after its last offset commit; when it answered rejections itself, a replayed
# rejection was answered twice (327 and 727 of 6,000 in two runs of this test). Rejections now go through
# the dispatcher, which answers each request id once; this test keeps it so.
def test_kill_9_does_not_answer_a_rejected_request_twice(settings: Settings, topics: dict[str, str],
                                                          api_keys: dict[tuple[str, str], str]) -> None:
    # real keys naming a team that is not theirs: each rejected as identity_mismatch
    rejected = [r.model_copy(update={"team": "ghost-team"})
                for r in workload.requests(6000, seed=9, keys=api_keys)]
    with Components(settings) as components:
        worker = components.start("streams-worker", "streams", "worker")
        components.start("dispatcher", "dispatch", "worker")
        with RequestProducer(settings) as producer:
            for r in rejected[:100]:
                producer.send(r)
            producer.flush()
            assert len(_outcomes(settings, topics, 100, 120, ("responses",))) >= 100
            for n, r in enumerate(rejected[100:], 1):  # a steady stream, so the kill lands mid-stream
                producer.send(r)
                if n % 500 == 0:
                    producer.flush()
                    time.sleep(0.1)  # the worker is busy with these 500 now
                    if n % 1000 == 0:
                        os.kill(worker.pid, signal.SIGKILL)  # between two offset commits
                        worker.wait(10)
                        worker = components.start("streams-worker", "streams", "worker")
        counts = _outcomes(settings, topics, len(rejected), 300, ("responses",))
    assert set(counts) == {r.request_id for r in rejected}, "a rejected request got no answer"
    twice = [rid for rid, n in counts.items() if n > 1]
    assert not twice, f"{len(twice)} of {len(rejected)} rejected requests answered twice after kill -9"
