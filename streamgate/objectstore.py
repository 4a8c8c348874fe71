"""A real S3-compatible server on loopback (MinIO), built, started and stopped by streamgate.

Why MinIO: it is the S3-compatible server most deployments of Delta on-premises use, it honours the
conditional PUT (`If-None-Match: *`, `If-Match`) that delta-rs relies on for concurrent writers
(docs/lakehouse.md), and it is a Go module, so the repo can build it from source through the Go module
proxy (`go install github.com/minio/minio@<pinned version>`) with no container and no binary download
from a vendor site. The binary is cached under ~/.cache/streamgate/tools/minio-<version>/ (outside the work
tree); `make setup` builds it once (about 3-6 minutes on 2 cores), later starts take about a second.

`streamgate s3 up` serves `<state_dir>/s3/data` on the endpoint in `lakehouse.object_store.endpoint`
(http://127.0.0.1:9000 when none is set) and creates the bucket of an `s3://` lakehouse root. Its root
credentials are those of the settings (the variables named in `lakehouse.object_store`), else generated
once into `<state_dir>/s3/credentials.json` (0600), which the settings then use: fine locally, never in
production. Tests start their own server on a free port with a temporary data directory
(tests/conftest.py, `s3_server`).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from streamgate.config import Settings
from streamgate.pidstop import stop_pid

log = logging.getLogger("streamgate.s3")

#: MinIO's module has no semver tags (it releases as RELEASE.<date>): a pinned pseudo-version.
MINIO_MODULE = "github.com/minio/minio"
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
TOOLS_DIR = Path.home() / ".cache" / "streamgate" / "tools"
DEFAULT_ENDPOINT = "http://127.0.0.1:9000"
CREDENTIALS_FILE = Path("s3") / "credentials.json"


class ObjectStoreError(RuntimeError):
    """The S3 server could not be built, started or reached; the message says how to fix it."""


def minio_binary() -> Path:
    return TOOLS_DIR / f"minio-{MINIO_VERSION}" / "minio"


def build_minio() -> Path:
    """The MinIO server binary, built from its Go module on first use (needs Go 1.24+ on PATH)."""
    binary = minio_binary()
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        raise ObjectStoreError("the local S3 server (MinIO) is built from its Go module: install Go 1.24+ "
                               "(Debian 13: apt-get install golang-go) and run `make setup`, or point "
                               "lakehouse.object_store at an existing S3-compatible server")
    binary.parent.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"GOBIN": str(binary.parent), "GOFLAGS": "-mod=mod -buildvcs=false",
                        "CGO_ENABLED": "0"}
    log.warning("building MinIO %s from the Go module proxy (a few minutes, once)", MINIO_VERSION)
    out = subprocess.run([go, "install", f"{MINIO_MODULE}@{MINIO_VERSION}"], env=env, capture_output=True,
                         text=True, check=False)
    if out.returncode != 0 or not binary.exists():
        raise ObjectStoreError(f"building MinIO failed:\n{out.stderr[-3000:]}")
    return binary


def local_credentials(state_dir: Path) -> tuple[str, str] | None:
    """The root credentials `streamgate s3 up` generated under the state directory, if any."""
    path = state_dir / CREDENTIALS_FILE
    try:
        data = json.loads(path.read_text())
        return str(data["access_key_id"]), str(data["secret_access_key"])
    except (OSError, ValueError, KeyError):
        return None


def _generate_credentials(state_dir: Path) -> tuple[str, str]:
    path = state_dir / CREDENTIALS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    pair = ("sg" + secrets.token_hex(8), secrets.token_urlsafe(30))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"access_key_id": pair[0], "secret_access_key": pair[1]}, f)
    return pair


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    endpoint: str
    pid: int | None
    data_dir: Path
    message: str


def server_answers(endpoint: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/minio/health/live", timeout=timeout_s) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _port_busy(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


class MinioServer:
    """One MinIO process serving `data_dir` on `endpoint` (http://127.0.0.1:<port>) with root credentials."""

    def __init__(self, data_dir: Path, endpoint: str, access_key_id: str, secret_access_key: str) -> None:
        self.data_dir, self.endpoint = data_dir, endpoint.rstrip("/")
        self.access_key_id, self.secret_access_key = access_key_id, secret_access_key
        self.home = data_dir.parent
        self.pid_file = self.home / "minio.pid"
        self.log = self.home / "minio.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists() and b"minio" not in cmdline.read_bytes():
            return None  # the pid was reused by something else
        return pid

    def status(self) -> ServerStatus:
        pid = self._pid()
        ok = pid is not None and server_answers(self.endpoint)
        msg = (f"running (pid {pid}) on {self.endpoint}" if ok else
               f"process {pid} exists but does not answer on {self.endpoint}" if pid else "not running")
        return ServerStatus(ok, self.endpoint, pid, self.data_dir, msg)

    def up(self, timeout_s: float = 30.0) -> ServerStatus:
        """Start the server (idempotent) and return once it answers its health check."""
        current = self.status()
        if current.running:
            return current
        url = urlparse(self.endpoint)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        if url.scheme != "http" or host not in ("127.0.0.1", "localhost"):
            raise ObjectStoreError(f"the local S3 server serves http on loopback only, not {self.endpoint}")
        if current.pid is None and _port_busy(host, port):
            raise ObjectStoreError(f"port {port} on {host} is taken by another process; stop it or set "
                                   "lakehouse.object_store.endpoint to another port")
        if current.pid is None:
            binary = build_minio()
            self.data_dir.mkdir(parents=True, exist_ok=True)
            env = {"PATH": os.environ.get("PATH", ""), "HOME": str(self.home),
                   "MINIO_ROOT_USER": self.access_key_id, "MINIO_ROOT_PASSWORD": self.secret_access_key,
                   "MINIO_BROWSER": "off", "MINIO_UPDATE": "off"}
            with open(self.log, "ab") as out:
                self._proc = subprocess.Popen(
                    [str(binary), "server", "--quiet", "--address", f"{host}:{port}", str(self.data_dir)],
                    env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True, cwd=self.home)
            self.pid_file.write_text(str(self._proc.pid))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise ObjectStoreError(f"MinIO exited during start-up:\n{self._log_tail()}")
            if server_answers(self.endpoint, 1.0):
                return self.status()
            time.sleep(0.2)
        raise ObjectStoreError(f"MinIO did not answer on {self.endpoint} within {timeout_s:.0f} s:\n"
                               f"{self._log_tail()}")

    def create_bucket(self, bucket: str) -> None:
        """Create `bucket` unless it exists."""
        from pyarrow import fs

        s3 = fs.S3FileSystem(access_key=self.access_key_id, secret_key=self.secret_access_key,
                             endpoint_override=self.endpoint, region="us-east-1",
                             allow_bucket_creation=True)
        if s3.get_file_info(bucket).type == fs.FileType.NotFound:
            s3.create_dir(bucket)

    def down(self, timeout_s: float = 15.0) -> ServerStatus:
        """Stop the server (SIGTERM, then SIGKILL); its data is kept for the next `up`."""
        pid = self._pid()
        if pid is not None:
            stop_pid(pid, self._pid, timeout_s)
        self.pid_file.unlink(missing_ok=True)
        return ServerStatus(False, self.endpoint, None, self.data_dir, "stopped")

    def _log_tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return "(no MinIO log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def local_server(settings: Settings) -> MinioServer:
    """The server `streamgate s3 up/down/status` manages for these settings."""
    store = settings.lakehouse.object_store
    if store.access_key_id is not None and store.secret_access_key is not None:
        creds = (store.access_key_id.get_secret_value(), store.secret_access_key.get_secret_value())
    else:
        creds = local_credentials(settings.state_dir) or _generate_credentials(settings.state_dir)
    return MinioServer(settings.state_dir / "s3" / "data", store.endpoint or DEFAULT_ENDPOINT, *creds)
