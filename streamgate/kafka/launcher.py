"""A real single-node Apache Kafka (KRaft) broker on loopback, started and stopped by streamgate.

The broker's jars come from Maven Central through `ops/kafka/pom.xml`; the resolved classpath is cached
outside the work tree, so only the first start pays for Maven. The log directory is formatted once and
kept, so data survives `down` + `up`. When a cluster is configured (KAFKA_BOOTSTRAP_SERVERS), nothing is
started: every command checks that cluster instead.

Security is on by default (docs/security.md): the client listener takes SASL/SCRAM-SHA-512 (over TLS
with `kafka.security.protocol: SASL_SSL`, from a CA generated under the state directory), Kafka's ACL
authorizer denies whatever schemas/principals.yaml does not allow, and the `admin` principal is the only
super user. Its password and every component's are generated at format time into the credentials file
(0600); the controller listener (loopback, broker-to-controller only) authenticates with PLAIN as admin.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from base64 import urlsafe_b64encode
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient

from streamgate.config import REPO_ROOT, Settings
from streamgate.kafka.clients import admin_config
from streamgate.kafka.security import KafkaSecurityError, ensure_credentials, ensure_local_tls, write_private
from streamgate.maven import MavenError, maven_classpath

POM = REPO_ROOT / "ops" / "kafka" / "pom.xml"
LOG4J = REPO_ROOT / "ops" / "kafka" / "log4j2.yaml"
CACHE_DIR = Path.home() / ".cache" / "streamgate"


class KafkaLauncherError(RuntimeError):
    """The broker could not be prepared, started or reached; the message says how to fix it."""


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    external: bool
    bootstrap: str
    pid: int | None
    data_dir: Path | None
    message: str


def _java_major(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return 0
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def broker_answers(settings: Settings, timeout_s: float = 3.0) -> bool:
    """Whether the configured broker answers a metadata request (as the admin principal)."""
    try:
        config = admin_config(settings, client_id="streamgate-probe")
    except KafkaSecurityError:
        return False  # no credentials yet: nothing we started answers
    # probing a broker that is still starting is expected to fail: keep librdkafka quiet
    admin = AdminClient(config | {"socket.connection.setup.timeout.ms": 2000, "log_level": 0})
    try:
        return bool(admin.list_topics(timeout=timeout_s).brokers)
    except Exception:
        return False


def _port_busy(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class LocalKafka:
    """`up`, `down` and `status` of the local broker described by `settings.kafka.local`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        local = settings.kafka.local
        self.data_dir = settings.resolve(local.data_dir)
        self.home = self.data_dir.parent / f"{self.data_dir.name}-broker"
        self.log_dir = self.data_dir / "logs"
        self.pid_file = self.home / "broker.pid"
        self.server_log = self.home / "kafka-server.log"
        self.bootstrap = settings.kafka.bootstrap()
        self._proc: subprocess.Popen[bytes] | None = None

    # -- status -------------------------------------------------------------------------------------
    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists() and b"kafka.Kafka" not in cmdline.read_bytes():
            return None  # the pid was reused by something else
        return pid

    def status(self) -> BrokerStatus:
        if self.settings.kafka.external:
            ok = broker_answers(self.settings)
            return BrokerStatus(ok, True, self.bootstrap, None, None,
                                f"external cluster {self.bootstrap} {'answers' if ok else 'does not answer'}")
        pid = self._pid()
        ok = pid is not None and broker_answers(self.settings, 2.0)
        if ok:
            msg = f"running (pid {pid}) on {self.bootstrap}"
        elif pid:
            msg = f"process {pid} exists but does not answer on {self.bootstrap} yet"
        else:
            msg = "not running"
        return BrokerStatus(ok, False, self.bootstrap, pid, self.data_dir, msg)

    # -- up -----------------------------------------------------------------------------------------
    def up(self) -> BrokerStatus:
        """Start the broker (idempotent) and return once it answers metadata requests."""
        if self.settings.kafka.external:
            status = self.status()
            if not status.running:
                raise KafkaLauncherError(f"the configured cluster {self.bootstrap} does not answer "
                                         "(KAFKA_BOOTSTRAP_SERVERS / kafka.bootstrap_servers)")
            return status
        current = self.status()
        if current.running:
            return current
        if current.pid is None:
            local = self.settings.kafka.local
            for port in (local.port, local.controller_port):
                if _port_busy(port):
                    raise KafkaLauncherError(
                        f"port {port} on 127.0.0.1 is taken by another process; stop it or set "
                        "kafka.local.port / controller_port in the config")
            java = self._check_tools()
            classpath = resolve_classpath()
            self._format_once(java, classpath)
            self._start(java, classpath)
        return self._wait_until_answering()

    def _check_tools(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise KafkaLauncherError("Java 17+ is required for the local Kafka broker (apt-get install "
                                     "openjdk-17-jre-headless), or set KAFKA_BOOTSTRAP_SERVERS")
        major = _java_major(java)
        if major < 17:
            raise KafkaLauncherError(f"Java 17+ is required, found Java {major or '?'} at {java}")
        return java

    def _admin_password(self) -> str:
        security = self.settings.kafka.security
        names = [security.principal("admin")]
        return ensure_credentials(self.settings, names)[names[0]]

    def _security_properties(self) -> dict[str, str]:
        """Listeners, SASL, TLS and the authorizer, from `kafka.security`."""
        local, security = self.settings.kafka.local, self.settings.kafka.security
        proto = security.protocol
        props = {"listeners": f"{proto}://127.0.0.1:{local.port},CONTROLLER://127.0.0.1:{local.controller_port}",
                 "advertised.listeners": f"{proto}://127.0.0.1:{local.port}",
                 "controller.listener.names": "CONTROLLER",
                 "inter.broker.listener.name": proto}
        if not security.enabled:
            return props | {"listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"}
        admin, password = security.principal("admin"), self._admin_password()
        mech, listener = security.mechanism, proto.lower()
        props |= {
            "listener.security.protocol.map": f"{proto}:{proto},CONTROLLER:SASL_PLAINTEXT",
            f"listener.name.{listener}.sasl.enabled.mechanisms": mech,
            f"listener.name.{listener}.{mech.lower()}.sasl.jaas.config":
                f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{admin}" '
                f'password="{password}";',
            "sasl.mechanism.inter.broker.protocol": mech,
            # SCRAM users live in the metadata log, which the controller cannot read before it runs:
            # the controller listener takes PLAIN with the admin user declared here
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config":
                f'org.apache.kafka.common.security.plain.PlainLoginModule required username="{admin}" '
                f'password="{password}" user_{admin}="{password}";',
            "sasl.mechanism.controller.protocol": "PLAIN",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{admin}",
            "allow.everyone.if.no.acl.found": "false",
        }
        if proto == "SASL_SSL":
            tls = ensure_local_tls(self.settings, self.home / "tls")
            props |= {"ssl.keystore.type": "PEM", "ssl.keystore.location": str(tls.keystore),
                      "ssl.truststore.type": "PEM", "ssl.truststore.location": str(tls.ca),
                      "ssl.client.auth": "none", "ssl.endpoint.identification.algorithm": "https"}
        return props

    def _server_properties(self) -> Path:
        local = self.settings.kafka.local
        self.home.mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{local.controller_port}",
            **self._security_properties(),
            "log.dirs": str(self.log_dir),
            "num.partitions": "3",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.retention.check.interval.ms": "60000",
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
            "num.io.threads": "4",
            "num.network.threads": "2",
        }
        path = self.home / "server.properties"
        write_private(path, "".join(f"{k}={v}\n" for k, v in props.items()))  # holds the admin password
        return path

    def _format_once(self, java: str, classpath: str) -> None:
        props = self._server_properties()
        secured = self.home / "scram.formatted"
        if (self.log_dir / "meta.properties").exists():
            if self.settings.kafka.security.enabled and not secured.exists():
                raise KafkaLauncherError(
                    f"{self.log_dir} was formatted without SASL users, so the secured broker would admit "
                    f"no one: remove {self.data_dir} and {self.home} (their topics are lost) to start "
                    "afresh, or set kafka.security.protocol: PLAINTEXT")
            return
        cluster_file = self.home / "cluster.id"
        if not cluster_file.exists():
            cluster_file.write_text(urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))
        cmd = [java, "-cp", classpath, f"-Dlog4j2.configurationFile={LOG4J}",
               f"-Dstreamgate.kafka.log={self.home / 'format.log'}",
               # `=` form: a base64 cluster id may start with '-', which argparse would take for an option
               "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_file.read_text().strip()}",
               f"--config={props}", *self._scram_users()]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise KafkaLauncherError(f"formatting {self.log_dir} failed:\n{out.stdout}{out.stderr}")
        if self.settings.kafka.security.enabled:
            secured.write_text("SCRAM users added at format time\n")

    def _scram_users(self) -> list[str]:
        """`--add-scram` arguments: the admin and every component principal, with fresh passwords."""
        security = self.settings.kafka.security
        if not security.enabled:
            return []
        from streamgate.kafka.acls import role_names

        names = sorted({security.principal("admin"), *role_names(self.settings).values()})
        passwords = ensure_credentials(self.settings, names)
        return [f"--add-scram={security.mechanism}=[name={n},password={passwords[n]}]" for n in names]

    def _start(self, java: str, classpath: str) -> None:
        heap = self.settings.kafka.local.heap
        cmd = [java, f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
               "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={LOG4J}",
               f"-Dstreamgate.kafka.log={self.server_log}", "-cp", classpath, "kafka.Kafka",
               str(self.home / "server.properties")]
        with open(self.home / "stdout.log", "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, cwd=self.home)
        self._proc = proc
        self.pid_file.write_text(str(proc.pid))

    def _wait_until_answering(self) -> BrokerStatus:
        deadline = time.monotonic() + self.settings.kafka.local.start_timeout_s
        while time.monotonic() < deadline:
            exited = self._proc.poll() is not None if self._proc is not None else self._pid() is None
            if exited:
                raise KafkaLauncherError(f"the broker exited during start-up:\n{self._log_tail()}")
            if broker_answers(self.settings, 2.0):
                return self.status()
            time.sleep(0.3)
        raise KafkaLauncherError(f"the broker did not answer on {self.bootstrap} within "
                                 f"{self.settings.kafka.local.start_timeout_s:.0f} s:\n{self._log_tail()}")

    def _log_tail(self, lines: int = 30) -> str:
        chunks = []
        for path in (self.home / "stdout.log", self.server_log):
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                chunks.append(f"--- {path}\n" + "\n".join(tail))
        return "\n".join(chunks) or "(no broker log)"

    # -- down ---------------------------------------------------------------------------------------
    def down(self, timeout_s: float = 30.0) -> BrokerStatus:
        """Stop the broker cleanly (SIGTERM, then SIGKILL after `timeout_s`); a no-op when not running."""
        if self.settings.kafka.external:
            return self.status()
        pid = self._pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while self._pid() is not None and time.monotonic() < deadline:
                _reap(pid)
                time.sleep(0.2)
            if self._pid() is not None:
                os.kill(pid, signal.SIGKILL)
                time.sleep(0.5)
                _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        return BrokerStatus(False, False, self.bootstrap, None, self.data_dir, "stopped")


def _reap(pid: int) -> None:
    """Collect the exit status when the broker is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def resolve_classpath(force: bool = False) -> str:
    """The broker's runtime classpath, resolved by Maven once per pom version and cached."""
    try:
        return maven_classpath(POM, "kafka", CACHE_DIR, force=force)
    except MavenError as exc:
        hint = "(or set KAFKA_BOOTSTRAP_SERVERS to use an existing cluster)"
        raise KafkaLauncherError(f"{exc} {hint}") from exc
