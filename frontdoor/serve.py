"""Run one front-door instance (`streamgate serve`): the key ring and the policy followed live, the HTTP
server on `frontdoor.host:port`, until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import Callable

from aiohttp import web

from frontdoor.server import FrontDoor
from shared.identity import KeyRing
from shared.policy.config import load_policy
from shared.policy.holder import PolicyFollower, PolicyHolder
from streamgate.config import Settings

log = logging.getLogger("streamgate.frontdoor")


async def run_frontdoor(settings: Settings, *, ready: Callable[[str], None] | None = None) -> None:
    """Serve until a signal; `ready` is told the base URL once the port listens."""
    ring = KeyRing.for_settings(settings)
    keys = await asyncio.to_thread(functools.partial(ring.follow, settings, role="frontdoor"))
    holder = PolicyHolder(load_policy())
    policy = PolicyFollower(settings, holder, role="frontdoor")
    policy.start()
    door = FrontDoor(settings, ring, lambda: holder.policy)
    # a caller that hangs up cancels its handler: its reply waiter is forgotten at once, nothing leaks
    runner = web.AppRunner(door.app(), handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.frontdoor.host, settings.frontdoor.port, backlog=4096)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await site.start()
        url = f"http://{settings.frontdoor.host}:{settings.frontdoor.port}"
        partition = door.replies.partition if door.replies else None
        log.info("front door on %s (reply partition %s)", url, partition)
        if ready is not None:
            ready(url)
        await stop.wait()
    finally:
        await runner.cleanup()
        policy.stop()
        keys.stop()
