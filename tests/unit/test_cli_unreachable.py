"""The `streamgate` console script with no broker behind its config: one clear line, not a traceback."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from apps.cli.main import main


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


@pytest.mark.slow  # the admin client waits out its 30 s metadata timeout before it gives up
def test_a_command_without_a_broker_says_so_and_exits_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "streamgate.yaml"
    config.write_text(f"state_dir: {tmp_path}\nkafka:\n  bootstrap_servers: 127.0.0.1:{_closed_port()}\n"
                      "  security:\n    protocol: PLAINTEXT\n")
    monkeypatch.setattr(sys, "argv", ["streamgate", "topics", "drop", "--config", str(config)])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 3
    err = capsys.readouterr().err
    assert "no Kafka broker answered" in err and "streamgate kafka up" in err
    assert "Traceback" not in err
