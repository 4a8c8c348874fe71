"""The scheduled part of the lakehouse: silver, gold, quality checks and table care, on a timer.

`streamgate lakehouse refine --every 60` runs silver MERGE, gold rebuilds and the GX suites over the
last two landing dates each minute, and table care each `--maintain-every` seconds; `--once` runs one
round (cron-style). Each step is idempotent, so a killed round is simply run again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from lakehouse.gold import rebuild_all
from lakehouse.maintain import maintain_all
from lakehouse.quality import alert, record, run_checks
from lakehouse.silver import merge_request_facts
from streamgate.config import Settings

log = logging.getLogger("streamgate.lakehouse")


@dataclass(frozen=True)
class Round:
    facts: int
    gold_rows: dict[str, int]
    checks: int
    failed: int


def recent_dates(now: datetime | None = None) -> list[str]:
    """Today and yesterday (UTC): late records of the previous day still land in its partition."""
    now = now or datetime.now(UTC)
    return [(now - timedelta(days=d)).strftime("%Y-%m-%d") for d in (1, 0)]


def refine_once(settings: Settings, dates: list[str] | None = None) -> Round:
    dates = dates or recent_dates()
    facts = merge_request_facts(settings, dates)
    gold = rebuild_all(settings, dates)
    results = run_checks(settings, dates)
    record(settings, results)
    alert(settings, results)
    return Round(facts, gold, len(results), sum(not r.success for r in results))


def refine_forever(settings: Settings, every_s: float, maintain_every_s: float,
                   running: list[bool]) -> None:
    """Until `running[0]` turns false (a signal handler does it)."""
    next_maintain = time.monotonic() + maintain_every_s
    while running[0]:
        started = time.monotonic()
        done = refine_once(settings)
        log.info("refined: %d facts, gold %s, %d/%d checks passed", done.facts, done.gold_rows,
                 done.checks - done.failed, done.checks)
        if time.monotonic() >= next_maintain:
            for care in maintain_all(settings):
                log.info("maintained %s: files %d -> %d", care.table, care.files_before, care.files_after)
            next_maintain = time.monotonic() + maintain_every_s
        while running[0] and time.monotonic() - started < every_s:
            time.sleep(0.5)
