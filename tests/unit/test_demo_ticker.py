"""The demo restarts a component that exits while it is still sending, not only once sending ends (a
1M-request run's gateway worker died 2 minutes into its 10-minute send and stayed down until the end)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from apps.demo.run import DemoError, _Ticker


class _Lag:
    def sample(self) -> None:
        pass


class _Components:
    """Reports `exited` once from `supervise`, as Components does for a process it restarted, or
    `given_up` for one past its restarts."""

    logs = Path("/tmp/demo-logs")

    def __init__(self, given_up: list[str] | None = None) -> None:
        self.given_up = given_up or []
        self.supervised = 0

    def sample_memory(self) -> None:
        pass

    def supervise(self) -> list[str]:
        self.supervised += 1
        return self.given_up


def _ticker(components: _Components) -> _Ticker:
    return _Ticker(_Lag(), None, None, Console(quiet=True), components)  # type: ignore[arg-type]


def test_components_are_supervised_while_sending_once_a_second() -> None:
    components = _Components()
    tick = _ticker(components)
    for elapsed in (0.0, 0.1, 0.2):  # the first tick and two more within the same second
        tick(elapsed)
    assert components.supervised == 1
    tick.next_sample = 0.0  # a second later
    tick(1.0)
    assert components.supervised == 2


def test_a_component_that_keeps_exiting_while_sending_ends_the_demo_with_a_message() -> None:
    tick = _ticker(_Components(given_up=["gateway-worker"]))
    with pytest.raises(DemoError, match="gateway-worker kept exiting; see their logs in /tmp/demo-logs"):
        tick(0.0)
