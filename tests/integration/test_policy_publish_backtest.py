"""`streamgate config publish --backtest`: the diff against the policy in force, then a question.

The policy in force is the one last published on the config topic (real broker); the recorded traffic
is the constructed history of tests/unit/test_backtest.py in real Delta tables.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from apps.cli.main import app
from apps.demo.processes import write_config
from shared.policy.config import GATEWAY_FILE, load_policy
from shared.policy.holder import published_policy
from shared.policy.publish import publish_policy
from streamgate.config import Settings
from tests.unit.test_backtest import _candidate, _history

pytestmark = pytest.mark.kafka


def test_publish_backtests_first_and_asks(settings: Settings, topics: dict[str, str], tmp_path: Path) -> None:
    live = publish_policy(settings, GATEWAY_FILE)
    _history(settings)
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(yaml.safe_dump(_candidate(load_policy())))
    config = write_config(settings, tmp_path / "streamgate.yaml")
    args = ["config", "publish", str(candidate), "--backtest", "--since", "2026-11-29",
            "--config", str(config)]

    declined = CliRunner().invoke(app, args, input="n\n")
    assert declined.exit_code == 1, declined.output
    assert "newly rejected 5" in declined.output and "re-routed 12" in declined.output
    assert "Publish this policy?" in declined.output and "not published" in declined.output
    in_force = published_policy(settings)
    assert in_force is not None and in_force.version == live.version

    accepted = CliRunner().invoke(app, args, input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert "gateway policy candidate-1 published" in accepted.output
    in_force = published_policy(settings)
    assert in_force is not None and in_force.version == "candidate-1"
    # against the candidate now in force, the same file changes nothing
    again = CliRunner().invoke(app, args, input="n\n")
    assert "newly rejected 0" in again.output and "re-routed 0" in again.output
    # `policy backtest --published` compares with the topic's policy too; without it, with the file
    base = ["policy", "backtest", str(candidate), "--since", "2026-11-29", "--json", "--config", str(config)]
    on_topic = CliRunner().invoke(app, [*base, "--published"])
    assert on_topic.exit_code == 0 and json.loads(on_topic.output)["changed"] == 0
    assert json.loads(on_topic.output)["live"]["version"] == "candidate-1"
    from_file = CliRunner().invoke(app, base)
    assert from_file.exit_code == 0 and json.loads(from_file.output)["newly_rejected"] == 5
