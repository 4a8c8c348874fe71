"""A real Apache Kafka (KRaft) broker on loopback, or a cluster of them, started and stopped by streamgate.

The broker's jars come from Maven Central through `ops/kafka/pom.xml`; the resolved classpath is cached
outside the work tree, so only the first start pays for Maven. The log directory is formatted once and
kept, so data survives `down` + `up`. When a cluster is configured (KAFKA_BOOTSTRAP_SERVERS), nothing is
started: every command checks that cluster instead.

Security is on by default (docs/security.md): the client listener takes SASL/SCRAM-SHA-512 (over TLS
with `kafka.security.protocol: SASL_SSL`, from a CA generated under the state directory), Kafka's ACL
authorizer denies whatever schemas/principals.yaml does not allow, and the `admin` principal is the only
super user. Its password and every component's are generated at format time into the credentials file
(0600); the controller listener (loopback, broker-to-controller only) authenticates with PLAIN as admin.

`kafka.local.brokers: 3` (or `streamgate kafka up --brokers 3`) starts a cluster instead: three processes
from the same jars, each both a broker and a KRaft controller voter (combined roles: three JVMs rather
than six on a small machine, and the quorum still survives the loss of any one node), each with its own
ports and log directory under `<data_dir>-cluster/`. Its internal topics (offsets, transaction state)
are created with replication factor 3 and min.insync.replicas 2; `apply_spec` does the same for ours.
"""

from __future__ import annotations

import json
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

from schemas.topics import replication_for
from streamgate.config import REPO_ROOT, Settings
from streamgate.kafka.clients import admin_config
from streamgate.kafka.security import KafkaSecurityError, ensure_credentials, ensure_local_tls, write_private
from streamgate.maven import MavenError, maven_classpath
from streamgate.pidstop import stop_pid

POM = REPO_ROOT / "ops" / "kafka" / "pom.xml"
LOG4J = REPO_ROOT / "ops" / "kafka" / "log4j2.yaml"
CACHE_DIR = Path.home() / ".cache" / "streamgate"


class KafkaLauncherError(RuntimeError):
    """The broker could not be prepared, started or reached; the message says how to fix it."""


@dataclass(frozen=True)
class NodeStatus:
    """One node (broker + controller) of the local cluster."""

    node_id: int
    port: int
    pid: int | None
    #: whether the cluster's metadata lists this broker as alive
    live: bool


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    external: bool
    bootstrap: str
    pid: int | None
    data_dir: Path | None
    message: str
    nodes: tuple[NodeStatus, ...] = ()


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


def live_brokers(settings: Settings, timeout_s: float = 3.0) -> set[int] | None:
    """The ids of the brokers the cluster's metadata lists as alive; None when no broker answers."""
    try:
        config = admin_config(settings, client_id="streamgate-probe")
    except KafkaSecurityError:
        return None
    admin = AdminClient(config | {"socket.connection.setup.timeout.ms": 2000, "log_level": 0})
    try:
        return set(admin.list_topics(timeout=timeout_s).brokers)
    except Exception:
        return None


def _port_busy(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def broker_threads(cpus: int) -> dict[str, str]:
    """Request-handler and network threads for a broker on `cpus` cores: a handler per core and a network
    thread per two, at most Kafka's defaults (8 and 3). On 2 cores, 2 and 1 against 4 and 2 cost the
    broker 5-20% less CPU per request at 50-500 requests/s in two pairs of fresh brokers
    (docs/benchmarks.md, latency)."""
    io, network = min(max(cpus, 1), 8), min(max(cpus // 2, 1), 3)
    return {"num.io.threads": str(io), "num.network.threads": str(network)}


class KafkaNode:
    """One broker process: its ports, directories, properties, format, start and stop. The single-node
    broker is node 1 of 1, with the directories it has always had."""

    def __init__(self, settings: Settings, index: int = 0) -> None:
        self.settings = settings
        local = settings.kafka.local
        self.count = local.brokers
        self.node_id = index + 1
        self.port = local.client_ports()[index]
        self.controller_port = local.controller_ports()[index]
        base = settings.resolve(local.data_dir)
        if self.count == 1:
            self.data_dir = base
            self.home = base.parent / f"{base.name}-broker"
        else:
            cluster = base.parent / f"{base.name}-cluster"
            self.data_dir = cluster / f"node{self.node_id}"
            self.home = cluster / f"node{self.node_id}-broker"
        self.log_dir = self.data_dir / "logs"
        self.pid_file = self.home / "broker.pid"
        self.server_log = self.home / "kafka-server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def pid(self) -> int | None:
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

    def answers(self, timeout_s: float = 2.0) -> bool:
        """Whether this node itself serves metadata requests (a cluster's metadata may still list a node
        that was just killed, or list a restarted one before it serves)."""
        try:
            config = admin_config(self.settings, client_id="streamgate-probe")
        except KafkaSecurityError:
            return False
        config |= {"bootstrap.servers": f"127.0.0.1:{self.port}", "socket.connection.setup.timeout.ms": 2000,
                   "log_level": 0}
        try:
            return int(AdminClient(config).list_topics(timeout=timeout_s).orig_broker_id) == self.node_id
        except Exception:
            return False

    def exited(self) -> bool:
        return self.proc.poll() is not None if self.proc is not None else self.pid() is None

    def check_ports(self) -> None:
        for port in (self.port, self.controller_port):
            if _port_busy(port):
                raise KafkaLauncherError(
                    f"port {port} on 127.0.0.1 is taken by another process; stop it or set "
                    "kafka.local.port / controller_port / port_step in the config")

    def _admin_password(self) -> str:
        security = self.settings.kafka.security
        names = [security.principal("admin")]
        return ensure_credentials(self.settings, names)[names[0]]

    def _security_properties(self) -> dict[str, str]:
        """Listeners, SASL, TLS and the authorizer, from `kafka.security`."""
        security = self.settings.kafka.security
        proto = security.protocol
        props = {"listeners": f"{proto}://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                 "advertised.listeners": f"{proto}://127.0.0.1:{self.port}",
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
            # one CA and one certificate for 127.0.0.1, shared by every node of a local cluster
            tls = ensure_local_tls(self.settings, KafkaNode(self.settings, 0).home / "tls")
            props |= {"ssl.keystore.type": "PEM", "ssl.keystore.location": str(tls.keystore),
                      "ssl.truststore.type": "PEM", "ssl.truststore.location": str(tls.ca),
                      "ssl.client.auth": "none", "ssl.endpoint.identification.algorithm": "https"}
        return props

    def _server_properties(self) -> Path:
        local = self.settings.kafka.local
        self.home.mkdir(parents=True, exist_ok=True)
        voters = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(local.controller_ports()))
        # internal topics replicated like ours (schemas.topics.replication_for): 3/2 on a
        # cluster of three or more, 1/1 on one broker
        replicas, min_isr = replication_for(self.count)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": voters,
            **self._security_properties(),
            "log.dirs": str(self.log_dir),
            "num.partitions": "3",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": str(replicas),
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": str(replicas),
            "transaction.state.log.min.isr": str(min_isr),
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": str(replicas),
            "share.coordinator.state.topic.min.isr": str(min_isr),
            "group.initial.rebalance.delay.ms": "0",
            "log.retention.check.interval.ms": "60000",
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
            **broker_threads(os.cpu_count() or 1),
        }
        if self.count > 1:
            props["default.replication.factor"] = str(replicas)
            props["min.insync.replicas"] = str(min_isr)
        props |= local.properties
        path = self.home / "server.properties"
        write_private(path, "".join(f"{k}={v}\n" for k, v in props.items()))  # holds the admin password
        return path

    def format_once(self, java: str, classpath: str, cluster_id: str) -> None:
        props = self._server_properties()
        secured = self.home / "scram.formatted"
        if (self.log_dir / "meta.properties").exists():
            if self.settings.kafka.security.enabled and not secured.exists():
                raise KafkaLauncherError(
                    f"{self.log_dir} was formatted without SASL users, so the secured broker would admit "
                    f"no one: remove {self.data_dir} and {self.home} (their topics are lost) to start "
                    "afresh, or set kafka.security.protocol: PLAINTEXT")
            return
        cmd = [java, "-cp", classpath, f"-Dlog4j2.configurationFile={LOG4J}",
               f"-Dstreamgate.kafka.log={self.home / 'format.log'}",
               # `=` form: a base64 cluster id may start with '-', which argparse would take for an option
               "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
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

    def start(self, java: str, classpath: str) -> None:
        heap = self.settings.kafka.local.heap
        cmd = [java, f"-Xms{heap}", f"-Xmx{heap}", *self.settings.kafka.local.jvm_options,
               "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={LOG4J}",
               f"-Dstreamgate.kafka.log={self.server_log}", "-cp", classpath, "kafka.Kafka",
               str(self.home / "server.properties")]
        with open(self.home / "stdout.log", "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, cwd=self.home)
        self.proc = proc
        self.pid_file.write_text(str(proc.pid))

    def log_tail(self, lines: int = 30) -> str:
        chunks = []
        for path in (self.home / "stdout.log", self.server_log):
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                chunks.append(f"--- {path}\n" + "\n".join(tail))
        return "\n".join(chunks) or "(no broker log)"

    def stop(self, timeout_s: float = 30.0, *, hard: bool = False) -> None:
        """SIGTERM (a controlled shutdown: leadership moves first), SIGKILL after `timeout_s`; with
        `hard`, SIGKILL at once (kill -9: nothing flushed, nothing handed over)."""
        pid = self.pid()
        if pid is not None:
            stop_pid(pid, self.pid, 5.0 if hard else timeout_s, hard=hard, poll_s=0.2)
        self.pid_file.unlink(missing_ok=True)
        self.proc = None

    def quorum_leader(self) -> tuple[int, int] | None:
        """(leader epoch, leader id) of the KRaft quorum as this node last recorded it."""
        try:
            state = json.loads((self.log_dir / "__cluster_metadata-0" / "quorum-state").read_text())
            return int(state["leaderEpoch"]), int(state["leaderId"])
        except (OSError, ValueError, KeyError, TypeError):
            return None


class LocalKafka:
    """`up`, `down` and `status` of the local broker (or cluster) described by `settings.kafka.local`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.nodes = [KafkaNode(settings, i) for i in range(settings.kafka.local.brokers)]
        first = self.nodes[0]
        #: the single broker's directories (a cluster's are per node: `nodes`)
        self.data_dir = first.data_dir if len(self.nodes) == 1 else first.data_dir.parent
        self.home = first.home
        self.log_dir = first.log_dir
        self.pid_file = first.pid_file
        self.server_log = first.server_log
        self.bootstrap = settings.kafka.bootstrap()

    @property
    def cluster(self) -> bool:
        return len(self.nodes) > 1

    # -- status -------------------------------------------------------------------------------------
    def _pid(self) -> int | None:
        return self.nodes[0].pid()

    def status(self) -> BrokerStatus:
        if self.settings.kafka.external:
            ok = broker_answers(self.settings)
            return BrokerStatus(ok, True, self.bootstrap, None, None,
                                f"external cluster {self.bootstrap} {'answers' if ok else 'does not answer'}")
        if self.cluster:
            return self._cluster_status()
        pid = self._pid()
        ok = pid is not None and broker_answers(self.settings, 2.0)
        if ok:
            msg = f"running (pid {pid}) on {self.bootstrap}"
        elif pid:
            msg = f"process {pid} exists but does not answer on {self.bootstrap} yet"
        else:
            msg = "not running"
        node = NodeStatus(1, self.nodes[0].port, pid, ok)
        return BrokerStatus(ok, False, self.bootstrap, pid, self.data_dir, msg, (node,))

    def _cluster_status(self) -> BrokerStatus:
        pids = [n.pid() for n in self.nodes]
        live = live_brokers(self.settings, 2.0) if any(pids) else None
        nodes = tuple(NodeStatus(n.node_id, n.port, pid, live is not None and n.node_id in live)
                      for n, pid in zip(self.nodes, pids, strict=True))
        up = sum(s.live for s in nodes)
        ok = up == len(nodes)
        msg = f"{up} of {len(nodes)} brokers alive on {self.bootstrap}" if any(pids) else "not running"
        first_pid = next((p for p in pids if p is not None), None)
        return BrokerStatus(ok, False, self.bootstrap, first_pid, self.data_dir, msg, nodes)

    def active_controller(self) -> int | None:
        """The node id the KRaft quorum elected leader, as recorded in the newest epoch among running
        nodes (the Kafka admin API reports a random broker as 'controller' under KRaft, not this one)."""
        seen = [s for n in self.nodes if n.pid() is not None and (s := n.quorum_leader()) is not None]
        return max(seen)[1] if seen else None

    # -- up -----------------------------------------------------------------------------------------
    def up(self) -> BrokerStatus:
        """Start the broker(s) (idempotent) and return once every one answers metadata requests."""
        if self.settings.kafka.external:
            status = self.status()
            if not status.running:
                raise KafkaLauncherError(f"the configured cluster {self.bootstrap} does not answer "
                                         "(KAFKA_BOOTSTRAP_SERVERS / kafka.bootstrap_servers)")
            return status
        current = self.status()
        if current.running:
            return current
        stopped = [n for n in self.nodes if n.pid() is None]
        if stopped:
            for node in stopped:
                node.check_ports()
            java = self._check_tools()
            classpath = resolve_classpath()
            cluster_id = self._cluster_id()
            for node in stopped:
                node.format_once(java, classpath, cluster_id)
            for node in stopped:
                node.start(java, classpath)
        return self._wait_until_answering()

    def start_node(self, node_id: int) -> None:
        """Start one node of the cluster again (after `stop_node`) and wait until it serves requests
        itself and the cluster lists it alive."""
        node = self.nodes[node_id - 1]
        if node.pid() is None:
            node.check_ports()
            node.start(self._check_tools(), resolve_classpath())
        timeout_s = self.settings.kafka.local.start_timeout_s
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if node.exited():
                raise KafkaLauncherError(f"broker {node_id} exited during start-up:\n{node.log_tail()}")
            if node.answers() and self._all_answer():
                return
            time.sleep(0.3)
        raise KafkaLauncherError(f"broker {node_id} did not rejoin within {timeout_s:.0f} s:\n"
                                 + node.log_tail())

    def stop_node(self, node_id: int, *, hard: bool = False) -> None:
        """Stop one node: controlled shutdown, or with `hard` kill -9."""
        self.nodes[node_id - 1].stop(hard=hard)

    def _cluster_id(self) -> str:
        cluster_file = self.nodes[0].home / "cluster.id"
        if not cluster_file.exists():
            cluster_file.parent.mkdir(parents=True, exist_ok=True)
            cluster_file.write_text(urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))
        return cluster_file.read_text().strip()

    def _check_tools(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise KafkaLauncherError("Java 17+ is required for the local Kafka broker (apt-get install "
                                     "openjdk-17-jre-headless), or set KAFKA_BOOTSTRAP_SERVERS")
        major = _java_major(java)
        if major < 17:
            raise KafkaLauncherError(f"Java 17+ is required, found Java {major or '?'} at {java}")
        return java

    def _all_answer(self) -> bool:
        if not self.cluster:
            return broker_answers(self.settings, 2.0)
        live = live_brokers(self.settings, 2.0)
        return live is not None and {n.node_id for n in self.nodes} <= live

    def _wait_until_answering(self) -> BrokerStatus:
        timeout_s = self.settings.kafka.local.start_timeout_s
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if exited := [n for n in self.nodes if n.exited()]:
                raise KafkaLauncherError(f"the broker exited during start-up:\n{exited[0].log_tail()}")
            if self._all_answer():
                return self.status()
            time.sleep(0.3)
        what = "the broker" if not self.cluster else f"the {len(self.nodes)} brokers"
        raise KafkaLauncherError(f"{what} did not answer on {self.bootstrap} within {timeout_s:.0f} s:\n"
                                 + "\n".join(n.log_tail() for n in self.nodes))

    # -- down ---------------------------------------------------------------------------------------
    def down(self, timeout_s: float = 30.0) -> BrokerStatus:
        """Stop the broker(s) cleanly (SIGTERM, then SIGKILL after `timeout_s`); a no-op when not running.
        A cluster's nodes get SIGTERM together: the last voters then shut down without a quorum to hand
        leadership to, which is what a full stop means."""
        if self.settings.kafka.external:
            return self.status()
        running = [(n, pid) for n in self.nodes if (pid := n.pid()) is not None]
        for _, pid in running:
            os.kill(pid, signal.SIGTERM)
        for node, _ in running:
            node.stop(timeout_s)
        for node in self.nodes:
            node.pid_file.unlink(missing_ok=True)
        return BrokerStatus(False, False, self.bootstrap, None, self.data_dir, "stopped")


def resolve_classpath(force: bool = False) -> str:
    """The broker's runtime classpath, resolved by Maven once per pom version and cached."""
    try:
        return maven_classpath(POM, "kafka", CACHE_DIR, force=force)
    except MavenError as exc:
        hint = "(or set KAFKA_BOOTSTRAP_SERVERS to use an existing cluster)"
        raise KafkaLauncherError(f"{exc} {hint}") from exc
