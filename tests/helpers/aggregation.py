"""The aggregator as a real subprocess (`streamgate aggregate worker`), killable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from apps.demo.processes import write_config
from streamgate.config import Settings


class AggregatorProcess:
    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.config = write_config(settings, workdir / "aggregate.yaml")
        self.log = workdir / "aggregator.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = Path(sys.executable).parent / "streamgate"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([str(exe), "aggregate", "worker", "--config", str(self.config)],
                                         stdout=log, stderr=subprocess.STDOUT)

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
