"""Start, wait for and steer a simulator process (used by the demo, the benchmarks and the tests)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


class SimulatorProcess:
    def __init__(self, port: int, log: Path, config: Path | None = None, seed: int | None = None) -> None:
        self.port, self.log, self.config, self.seed = port, log, config, seed
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30) -> SimulatorProcess:
        exe = Path(sys.executable).parent / "streamgate"
        args = [str(exe), "simulator", "--port", str(self.port)]
        args += ["--config", str(self.config)] if self.config else []
        args += ["--seed", str(self.seed)] if self.seed is not None else []
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the simulator exited with {self.proc.returncode}; see {self.log}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()  # a caller whose start failed never stops it: no process is left behind
        raise TimeoutError(f"the simulator did not answer on {self.url} within {timeout_s} s")

    def set_profile(self, model: str, **changes: Any) -> dict[str, Any]:
        response = httpx.put(f"{self.url}/admin/profiles/{model}", json=changes, timeout=5)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def reset_profile(self, model: str) -> None:
        httpx.delete(f"{self.url}/admin/profiles/{model}", timeout=5).raise_for_status()

    def stats(self) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = httpx.get(f"{self.url}/admin/stats", timeout=5).json()
        return result

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
