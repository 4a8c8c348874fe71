"""Stopping a local server we started by its pid (the Kafka nodes, MinIO): a signal, a bounded wait,
SIGKILL if it outlives the wait, and the exit status collected so it does not linger as a zombie."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable


def reap(pid: int) -> None:
    """Collect the exit status when the process is our child (a no-op otherwise)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop_pid(pid: int, running: Callable[[], int | None], timeout_s: float, *, hard: bool = False,
             poll_s: float = 0.1) -> None:
    """SIGTERM (SIGKILL at once with `hard`), wait up to `timeout_s` until `running()` no longer names a
    pid, then SIGKILL whatever is left."""
    os.kill(pid, signal.SIGKILL if hard else signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while running() is not None and time.monotonic() < deadline:
        reap(pid)
        time.sleep(poll_s)
    if running() is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)
        reap(pid)
