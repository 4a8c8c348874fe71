"""`streamgate chaos` at a small size: every kind of component killed with -9 and restarted, the broker
restarted, malformed events and provider outages — and every invariant still holds.

The run gets a private broker (the session's one is left alone, since this run restarts its broker);
with an external cluster configured it uses that and skips the broker restart.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamgate.chaos.faults import KILLABLE
from streamgate.config import load_settings
from streamgate.demo.processes import use_simulator_port, write_config
from streamgate.kafka.launcher import LocalKafka
from tests.conftest import free_port, local_broker_settings

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_chaos_run_keeps_every_invariant(tmp_path: Path) -> None:
    configured = load_settings()
    external = configured.kafka.external
    base = (configured.model_copy(update={"state_dir": tmp_path / "state"}) if external
            else local_broker_settings(tmp_path / "state"))
    settings = use_simulator_port(base, free_port())
    config = write_config(settings, tmp_path / "chaos.yaml")
    exe = Path(sys.executable).parent / "streamgate"
    try:
        run = subprocess.run([str(exe), "chaos", "--requests", "800", "--duration", "30", "--seed", "7",
                              "--settle", "150", "--config", str(config)],
                             capture_output=True, text=True, timeout=540, check=False,
                             env=os.environ | {"COLUMNS": "160"})
    finally:
        if not external:
            LocalKafka(settings).down()
    out = run.stdout
    verdicts = [line for line in out.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert run.returncode == 0, f"{out[-4000:]}\n{run.stderr[-2000:]}"
    assert len(verdicts) == 4 and all(v.startswith("PASS") for v in verdicts), verdicts
    for name in KILLABLE:  # every fault really happened
        assert f"kill -9 {name}, restarted" in out
    assert out.count("malformed records into") == 3 and out.count("provider outage:") == 2
    assert external or "broker restarted" in out
