"""`streamgate demo` end to end on the test broker, small: every request gets an outcome."""

from __future__ import annotations

import pytest
from rich.console import Console

from streamgate.config import Settings
from streamgate.demo.run import run_demo

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_demo_accounts_for_every_request(settings: Settings) -> None:
    external = settings.model_copy(update={"kafka": settings.kafka.model_copy(
        update={"bootstrap_servers": settings.kafka.bootstrap()})})
    console = Console(record=True, width=120)
    outcomes = run_demo(external, requests=400, timeout_s=120, console=console)
    assert len(outcomes.routed) + len(outcomes.rejected) == 400
    assert len(outcomes.routed) > 300
    assert outcomes.dead_letters["malformed"] >= 3 and outcomes.dead_letters["duplicate"] >= 4
    text = console.export_text()
    assert "requests by outcome" in text and "routing split" in text
