"""The event loop the long-running async processes (the gateway worker, the front door) run on.

uvloop by default: its loop and socket transports are libuv in C, where asyncio's are Python. On the
fused gateway it cut the worker's CPU per request by 3-8% from 250 requests/s up (nothing measurable
below; p99s within the host's noise; docs/benchmarks.md, latency). `event_loop: asyncio` in the
config falls back to the standard loop, as does a platform without uvloop (Windows), with a warning."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

log = logging.getLogger("streamgate.eventloop")

T = TypeVar("T")
EventLoopKind = Literal["uvloop", "asyncio"]


def run(main: Coroutine[Any, Any, T], kind: EventLoopKind = "uvloop") -> T:
    """Run `main` to completion on a new event loop of `kind` (like `asyncio.run`)."""
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:
            log.warning("uvloop is not installed: running on asyncio's own event loop")
        else:
            return uvloop.run(main)
    return asyncio.run(main)
