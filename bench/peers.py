"""The peer gateways the gateway benchmark compares against, installed by the benchmark itself.

- LiteLLM proxy (PyPI `litellm[proxy]`) into a venv of its own under <peers>/litellm: its pins conflict
  with the project's locked dependencies, so it never enters uv.lock.
- Portkey's open-source gateway (npm `@portkey-ai/gateway`) into <peers>/portkey with npm.

Both installs are idempotent (a marker file records the installed spec; a matching marker and entry
point skip the install). When a registry cannot be reached the install raises `UnavailableError` with a
reason, and the benchmark records that path as skipped instead of failing.

`python -m bench.peers install` installs both (what `make bench` needs on a fresh machine).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

PEERS_DIR = Path.home() / ".cache" / "streamgate" / "peers"
# the newest release whose [proxy] extra resolves on PyPI today (1.108.8+ pin litellm-enterprise /
# litellm-proxy-extras builds that were never published there)
LITELLM_SPEC = "litellm[proxy]==1.108.7"
PORTKEY_SPEC = "@portkey-ai/gateway@1.15.2"
INSTALL_TIMEOUT_S = 900

_NETWORK_HINTS = ("failed to fetch", "connection refused", "connection reset", "connect error", "timed out",
                  "dns error", "name resolution", "network is unreachable", "econnrefused", "econnreset",
                  "enotfound", "eai_again", "etimedout", "request to https")


class UnavailableError(RuntimeError):
    """A path (a peer, or a streamgate path not configured) that cannot run here; the message is the
    reason recorded in the JSON."""


def _run_install(args: list[str], log: Path, what: str, registry: str) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"  installing {what} ({' '.join(args[:3])} ...; log: {log})", flush=True)
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise UnavailableError(f"installing {what} took over {INSTALL_TIMEOUT_S} s ({registry} slow or "
                              f"unreachable?)") from exc
    except FileNotFoundError as exc:
        raise UnavailableError(f"cannot install {what}: {args[0]} not found") from exc
    log.write_text(f"$ {' '.join(args)}\n{done.stdout}\n{done.stderr}")
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["(no output)"]
        text = (done.stderr + done.stdout).lower()
        cause = f"{registry} unreachable" if any(h in text for h in _NETWORK_HINTS) else "install failed"
        raise UnavailableError(f"{cause} while installing {what}: {tail[0][:300]} (full log: {log})")


def _marked(marker: Path, spec: str, entry: Path) -> bool:
    return marker.exists() and marker.read_text().strip() == spec and entry.exists()


def _uv() -> str | None:
    bundled = Path.home() / ".cache" / "streamgate" / "tools" / "bin" / "uv"
    return str(bundled) if bundled.exists() else shutil.which("uv")


def install_litellm(peers: Path = PEERS_DIR) -> Path:
    """LiteLLM proxy in <peers>/litellm/venv; returns its `litellm` executable."""
    home = peers / "litellm"
    venv, marker = home / "venv", home / "installed.txt"
    exe = venv / "bin" / "litellm"
    if _marked(marker, LITELLM_SPEC, exe):
        return exe
    marker.unlink(missing_ok=True)
    base_python = getattr(sys, "_base_executable", sys.executable)
    uv = _uv()
    if uv:
        _run_install([uv, "venv", "--quiet", "--allow-existing", "--python", base_python, str(venv)],
                     home / "venv.log", "a venv for LiteLLM", "uv")
        python = str(venv / "bin" / "python")
        _run_install([uv, "pip", "install", "--quiet", "--python", python, LITELLM_SPEC],
                     home / "install.log", LITELLM_SPEC, "PyPI")
    else:
        _run_install([base_python, "-m", "venv", str(venv)], home / "venv.log", "a venv for LiteLLM", "venv")
        _run_install([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", LITELLM_SPEC],
                     home / "install.log", LITELLM_SPEC, "PyPI")
    if not exe.exists():
        raise UnavailableError(f"{LITELLM_SPEC} installed but {exe} is missing")
    marker.write_text(LITELLM_SPEC + "\n")
    return exe


def install_portkey(peers: Path = PEERS_DIR) -> Path:
    """Portkey's gateway in <peers>/portkey/node_modules; returns its `build/start-server.js`."""
    home = peers / "portkey"
    marker = home / "installed.txt"
    entry = home / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    if _marked(marker, PORTKEY_SPEC, entry):
        return entry
    marker.unlink(missing_ok=True)
    if not shutil.which("node"):
        raise UnavailableError("node is not installed (Portkey's gateway runs on Node.js)")
    npm = shutil.which("npm")
    if not npm:
        raise UnavailableError("npm is not installed (needed to install Portkey's gateway)")
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "package.json").exists():
        (home / "package.json").write_text('{"name": "streamgate-bench-peers", "private": true}\n')
    # --ignore-scripts: its only install script is patch-package, with no patches in the published package
    _run_install([npm, "install", "--prefix", str(home), "--no-audit", "--no-fund", "--ignore-scripts",
                  "--save-exact", PORTKEY_SPEC], home / "install.log", PORTKEY_SPEC, "the npm registry")
    if not entry.exists():
        raise UnavailableError(f"{PORTKEY_SPEC} installed but {entry} is missing")
    marker.write_text(PORTKEY_SPEC + "\n")
    return entry


class ServiceProcess:
    """A peer gateway process: started with its output in a log, ready when `ready_url` answers."""

    def __init__(self, name: str, args: list[str], log: Path, ready_url: str,
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.name, self.args, self.log, self.ready_url = name, args, log, ready_url
        self.env, self.cwd = env, cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 300) -> ServiceProcess:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **(self.env or {})}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env, cwd=self.cwd)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise UnavailableError(f"{self.name} exited with {self.proc.returncode} at start; "
                                       f"see {self.log}")
            try:
                if httpx.get(self.ready_url, timeout=1).status_code < 500:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise UnavailableError(f"{self.name} did not answer {self.ready_url} within {timeout_s} s; "
                               f"see {self.log}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def litellm_process(exe: Path, port: int, upstream: str, model: str,
                    workdir: Path) -> tuple[ServiceProcess, str]:
    """LiteLLM proxy with its documented defaults and one worker, `model` served by the OpenAI-compatible
    `upstream` (…/v1). Returns the process and the master key a client must send."""
    config = workdir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {model}\n"
        "    litellm_params:\n"
        f"      model: openai/{model}\n"
        f"      api_base: {upstream}\n"
        "      api_key: sk-simulator\n")
    key = "sk-bench-" + secrets.token_hex(8)
    # LITELLM_LOCAL_MODEL_COST_MAP: use the price map shipped in the package instead of fetching it at
    # start (no route to that host here; the fetch only warns and falls back to the same local map)
    env = {"LITELLM_MASTER_KEY": key, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    args = [str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
            "--num_workers", "1"]
    return ServiceProcess("litellm", args, workdir / "litellm.log", f"http://127.0.0.1:{port}/health/liveliness",
                          env, cwd=workdir), key


def portkey_process(entry: Path, port: int, workdir: Path) -> ServiceProcess:
    """Portkey's gateway with its defaults, on `port` (its own flag; 8787 by default)."""
    node = shutil.which("node") or "node"
    return ServiceProcess("portkey", [node, str(entry), f"--port={port}"], workdir / "portkey.log",
                          f"http://127.0.0.1:{port}/", cwd=entry.parent)


def main(argv: list[str]) -> None:
    if argv[:1] != ["install"]:
        raise SystemExit("usage: python -m bench.peers install   (installs LiteLLM and Portkey under "
                         f"{PEERS_DIR})")
    failed = False
    for name, install in (("litellm", install_litellm), ("portkey", install_portkey)):
        try:
            print(f"{name}: ready at {install()}")
        except UnavailableError as exc:
            failed = True
            print(f"{name}: unavailable: {exc}")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
