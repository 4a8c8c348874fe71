"""Shared benchmark plumbing: repeatable timing, JSON results, and the table in docs/benchmarks.md.

This machine is noisy (2 shared cores), so every benchmark reports a ratio to a baseline measured in the
same run; absolute numbers are kept for context only.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
#: a simulator profile that answers at once and never fails: what gateway benchmarks measure against
ZERO_LATENCY: dict[str, float] = {"median_ms": 0, "p99_ms": 0, "error_rate": 0, "rate_limit_rate": 0,
                                  "hang_rate": 0, "invalid_json_rate": 0}
DOC = ROOT.parent / "docs" / "benchmarks.md"


def rate(fn: Callable[[], int], *, repeats: int = 5) -> float:
    """Median items/s over `repeats` runs of `fn`, which returns how many items it processed."""
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def median_ms(fn: Callable[[], Any], *, repeats: int = 5) -> float:
    """Median wall time of `repeats` calls of `fn`, in milliseconds."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def machine() -> dict[str, Any]:
    import os

    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


def write_result(name: str, result: dict[str, Any], table: list[tuple[str, str]]) -> Path:
    """Write bench/results/<name>.json and replace this benchmark's section of docs/benchmarks.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
               "machine": machine(), **result}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    _update_doc(name, payload["measured_at"], table)
    return path


def _update_doc(name: str, when: str, table: list[tuple[str, str]]) -> None:
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    body = "\n".join([begin, f"### {name}", f"_measured {when} with `streamgate bench {name}`_", "",
                      "| measure | value |", "| --- | --- |", *[f"| {k} | {v} |" for k, v in table], end])
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\nGenerated sections; prose is kept.\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + body + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + body + "\n"
    DOC.write_text(text)


def wait_until(producer: Any, due: float) -> None:
    """A paced client's wait: serve delivery reports until `due` (time.time()), without spinning.
    librdkafka's poll takes whole milliseconds, so `poll(0.0004)` returned at once: the loop that waited
    that way spun, and at 500/s it burned half a core of the two the pipeline under test runs on
    (2026-12-02, cProfile: 139 polls per send)."""
    while (left := due - time.time()) > 0:
        if left >= 0.001:
            producer.poll(0.001)
        else:
            time.sleep(left)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict[str, Any]], what: str) -> None:
    """Write a generated labeled set; datasets are committed so every run scores the same rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} {what} -> {path}")


def bench_settings() -> Any:
    """Settings with a fresh topic prefix on the local broker (started if needed), topics and ACLs applied."""
    import uuid

    from streamgate.config import load_settings
    from streamgate.kafka.launcher import LocalKafka
    from streamgate.kafka.topics import apply_spec

    base = load_settings()
    settings = base.model_copy(update={"kafka": base.kafka.model_copy(
        update={"topic_prefix": f"bench{uuid.uuid4().hex[:6]}."})})
    LocalKafka(settings).up()
    apply_spec(settings)
    drop_at_exit(settings)
    warn_of_other_deployments(settings)
    return settings


def warn_of_other_deployments(settings: Any) -> None:
    """Say so when the broker carries other prefixed deployments (a chaos run, a killed benchmark): their
    idle partitions and ACLs cost it CPU on every request, so the figures would be a loaded broker's
    (308 topics and 1,786 ACLs left by killed experiments were found under a day's benchmarks)."""
    import sys

    from streamgate.kafka.topics import deployments

    own = _DROPPED_AT_EXIT | {settings.kafka.topic_prefix}  # this run's, which it drops itself
    others = {p: n for p, n in deployments(settings).items() if p and p not in own}
    if others:
        shown = ", ".join(sorted(others)[:5]) + (" ..." if len(others) > 5 else "")
        print(f"warning: the broker also holds {len(others)} other prefixed deployments ({shown}), which "
              f"load it; `streamgate topics drop PREFIX` removes one", file=sys.stderr)


#: Topic prefixes this process drops when it ends.
_DROPPED_AT_EXIT: set[str] = set()


def drop_at_exit(settings: Any) -> None:
    """Delete the run's topics and ACLs when the benchmark process ends: the local broker outlives every
    run, and left behind, each run's ~150 idle partitions added to the broker's periodic work (4,873
    partitions once, measured as broker CPU in the pipeline benchmarks)."""
    import atexit
    import logging

    from streamgate.kafka.topics import drop_prefix

    def drop() -> None:
        try:
            drop_prefix(settings)
        except Exception as exc:  # the broker may be gone already: leftovers only cost idle work
            logging.getLogger("bench").warning("could not drop topics under %s: %s",
                                               settings.kafka.topic_prefix, exc)

    _DROPPED_AT_EXIT.add(settings.kafka.topic_prefix)
    atexit.register(drop)
