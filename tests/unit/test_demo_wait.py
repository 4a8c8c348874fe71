"""The demo's wait for outcomes follows the backlog: on while outcomes arrive, off after a stall."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.console import Console

from apps.demo.run import _progress, _wait_for_outcomes


@dataclass
class _Outcomes:
    mine: int = 0


@dataclass
class FakeWatcher:
    """Delivers `per_poll` outcomes per poll until `stop_at`, then none (a stuck backlog)."""

    per_poll: int
    stop_at: int
    outcomes: _Outcomes = field(default_factory=_Outcomes)

    def poll(self, timeout: float = 0.5) -> None:
        time.sleep(0.01)
        if self.outcomes.mine < self.stop_at:
            self.outcomes.mine = min(self.stop_at, self.outcomes.mine + self.per_poll)


class FakeComponents:
    def supervise(self) -> list[str]:
        return []


def _wait(watcher: FakeWatcher, count: int, stall_s: float) -> float:
    with _progress(Console(quiet=True)) as progress:
        return _wait_for_outcomes(watcher, count, FakeComponents(), progress, stall_s,  # type: ignore[arg-type]
                                  lambda _: None)


def test_a_slow_backlog_is_waited_for_as_long_as_it_moves() -> None:
    watcher = FakeWatcher(per_poll=1, stop_at=60)  # ~0.6 s of steady progress, far past the stall window
    took = _wait(watcher, 60, stall_s=0.2)
    assert watcher.outcomes.mine == 60 and took >= 0.5


def test_a_stuck_backlog_ends_the_wait_after_the_stall_window() -> None:
    watcher = FakeWatcher(per_poll=5, stop_at=20)
    took = _wait(watcher, 100, stall_s=0.3)
    assert watcher.outcomes.mine == 20 and 0.3 <= took < 3
