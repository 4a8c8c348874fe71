"""Start streamgate components as separate processes, and stop every one of them on exit or Ctrl-C."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import TracebackType

import yaml

from streamgate.config import COMPONENTS, MetricsPorts, Settings
from streamgate.kafka.security import ca_path, credentials_path


def write_config(settings: Settings, path: Path) -> Path:
    """The settings as a YAML file, so child processes load exactly what this process uses."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = settings.model_dump(mode="json", exclude_none=True)
    for provider in raw.get("providers", {}).values():
        provider.pop("api_key", None)  # never on disk: the child reads it from `api_key_env` itself
    # Kafka passwords stay in their own 0600 file; the child gets its path, absolute, so a child run
    # with another state directory still finds this deployment's credentials and CA
    security = raw["kafka"]["security"]
    security["credentials_file"] = str(credentials_path(settings))
    security["ca_file"] = str(ca_path(settings))
    raw.get("identity", {}).pop("hmac_secret", None)  # likewise, from `identity.hmac_secret_env`
    for secret in ("access_key_id", "secret_access_key"):  # likewise, from the variables named there
        raw.get("lakehouse", {}).get("object_store", {}).pop(secret, None)
    path.write_text(yaml.safe_dump(raw))
    return path


def use_simulator_port(settings: Settings, port: int) -> Settings:
    """Move the simulator to `port`, and the providers that point at it along with it."""
    old = f"127.0.0.1:{settings.simulator.port}"
    providers = {name: p.model_copy(update={"base_url": p.base_url.replace(old, f"127.0.0.1:{port}")})
                 for name, p in settings.providers.items()}
    return settings.model_copy(update={"providers": providers,
                                       "simulator": settings.simulator.model_copy(update={"port": port})})


def use_free_metrics_ports(settings: Settings) -> Settings:
    """Each component's configured metrics port if it is free here, else one the OS picks: a second demo
    or a test run on the same machine must not take (or lose) another run's endpoints."""
    metrics = settings.metrics
    if not metrics.enabled:
        return settings
    chosen: dict[str, int] = {}
    with contextlib.ExitStack() as held:  # every socket stays bound until all are chosen: no port twice
        for component in COMPONENTS:
            if not (port := metrics.port(component)):
                chosen[component] = 0
                continue
            sock = held.enter_context(socket.socket())
            try:
                sock.bind((metrics.host, port))
            except OSError:
                sock.bind((metrics.host, 0))
            chosen[component] = int(sock.getsockname()[1])
    ports = MetricsPorts(**chosen)
    return settings.model_copy(update={"metrics": metrics.model_copy(update={"ports": ports})})


def peak_rss_bytes(pid: int) -> int | None:
    """The process's peak resident set (VmHWM, kept by the kernel), None when it is gone or unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class Components:
    """A group of `streamgate ...` child processes with logs under `<state>/logs`."""

    def __init__(self, settings: Settings, name: str = "demo") -> None:
        self.logs = settings.state_dir / "logs"
        self.config = write_config(settings, settings.state_dir / f"{name}-config.yaml")
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.args: dict[str, tuple[str, ...]] = {}
        self.restarts: dict[str, int] = {}
        #: name -> highest peak RSS seen of that component's process(es), in bytes (`sample_memory`)
        self.peak_rss: dict[str, int] = {}
        #: other processes whose memory the summary reports (the broker), by name
        self.watched: dict[str, int] = {}

    def sample_memory(self) -> None:
        """Record each running process's peak RSS so far (a restarted one keeps the higher of its lives)."""
        pids = {name: p.pid for name, p in self.procs.items() if p.poll() is None} | self.watched
        for name, pid in pids.items():
            if (peak := peak_rss_bytes(pid)) is not None:
                self.peak_rss[name] = max(self.peak_rss.get(name, 0), peak)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        self.args[name] = args
        self.logs.mkdir(parents=True, exist_ok=True)
        exe = Path(sys.executable).parent / "streamgate"
        with open(self.logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen([str(exe), *args, "--config", str(self.config)], stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs[name] = proc
        return proc

    def dead(self) -> list[str]:
        return [name for name, p in self.procs.items() if p.poll() is not None]

    def supervise(self, max_restarts: int = 3) -> list[str]:
        """Restart components that exited (as a process supervisor would: every stage resumes from its
        committed offsets); returns those past `max_restarts`, which the caller should give up on."""
        failed = []
        for name in self.dead():
            if name not in self.args or self.restarts.get(name, 0) >= max_restarts:
                failed.append(name)
                continue
            self.restarts[name] = self.restarts.get(name, 0) + 1
            self.start(name, *self.args[name])
        return failed

    def stop(self) -> None:
        self.sample_memory()  # the last word on each process's peak, before it is gone
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)

    def __enter__(self) -> Components:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
