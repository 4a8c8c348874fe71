"""A transaction call blocked past its deadline ends the process (streamgate/kafka/stuck.py)."""

from __future__ import annotations

import subprocess
import sys
import time

SCRIPT = """
import time
from streamgate.kafka.stuck import exit_if_stuck
with exit_if_stuck({deadline}, "a test call"):
    time.sleep({blocked})
print("finished")
"""


def _run(deadline: float, blocked: float) -> tuple[subprocess.CompletedProcess[str], float]:
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(deadline=deadline, blocked=blocked)],
                          check=False, capture_output=True, text=True, timeout=60)
    return done, time.monotonic() - began


def test_a_call_blocked_past_its_deadline_exits_at_the_deadline() -> None:
    done, took = _run(deadline=0.5, blocked=30)
    assert done.returncode == 3
    assert "a test call still blocked after" in done.stderr
    assert "finished" not in done.stdout
    assert took < 20


def test_a_call_that_finishes_in_time_goes_on() -> None:
    done, _ = _run(deadline=5, blocked=0.05)
    assert done.returncode == 0 and "finished" in done.stdout
