"""The event loop the gateway worker and the front door run on (streamgate/eventloop.py)."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest
import uvloop

from streamgate import eventloop
from streamgate.config import Settings


async def _loop_type() -> type:
    return type(asyncio.get_running_loop())


def test_uvloop_is_the_default_and_asyncio_can_be_chosen() -> None:
    assert Settings().event_loop == "uvloop"
    assert issubclass(eventloop.run(_loop_type(), Settings().event_loop), uvloop.Loop)
    assert not issubclass(eventloop.run(_loop_type(), "asyncio"), uvloop.Loop)


def test_without_uvloop_it_runs_on_asyncio_with_a_warning(monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError
    with caplog.at_level(logging.WARNING, logger="streamgate.eventloop"):
        loop_type = eventloop.run(_loop_type(), "uvloop")
    assert not issubclass(loop_type, uvloop.Loop)
    assert "uvloop is not installed" in caplog.text


def test_an_unknown_loop_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="event_loop"):
        Settings.model_validate({"event_loop": "trio"})
