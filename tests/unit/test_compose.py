"""docker-compose.yml cannot run here (no Docker engine), so it is checked: services, dependencies, and
every streamgate command resolved against the real CLI."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import typer
import yaml
from prometheus_client.metrics import MetricWrapperBase

from apps.cli.main import app
from streamgate.config import COMPONENTS, REPO_ROOT, load_settings

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def _resolves(command: list[str]) -> bool:
    """Walk the click tree: every word must be a subcommand, ending on a command (options aside)."""
    node: Any = typer.main.get_command(app)  # typer vendors click: groups are known by get_command
    for word in command:
        if word.startswith("-"):
            break
        if not hasattr(node, "get_command"):
            return False
        sub = node.get_command(node.context_class(node), word)
        if sub is None:
            return False
        node = sub
    return not hasattr(node, "get_command")


def test_every_dependency_names_a_service() -> None:
    services: dict[str, Any] = COMPOSE["services"]
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        for dep in deps if isinstance(deps, (list, dict)) else []:
            assert dep in services, f"{name} depends on unknown service {dep}"


KAFKA_NODES = ("kafka-1", "kafka-2", "kafka-3")


def test_infrastructure_services_exist() -> None:
    services = COMPOSE["services"]
    needed = {*KAFKA_NODES, "schema-registry", "redis", "postgres", "minio", "prometheus", "grafana"}
    assert needed <= set(services)
    assert services["minio"]["image"].startswith("minio/minio")


def test_kafka_is_a_three_node_quorum_replicating_like_topics_apply() -> None:
    """Three nodes of one cluster, each a broker and a controller voter; the internal topics replicated
    as `apply_spec` replicates ours on three brokers (schemas.topics.replication_for)."""
    from schemas.topics import replication_for

    services = COMPOSE["services"]
    envs = [services[n]["environment"] for n in KAFKA_NODES]
    voters = ",".join(f"{i}@{n}:9093" for i, n in enumerate(KAFKA_NODES, 1))
    replicas, min_isr = replication_for(len(KAFKA_NODES))
    for i, (name, env) in enumerate(zip(KAFKA_NODES, envs, strict=True), 1):
        assert "apache/kafka" in services[name]["image"]
        assert env["KAFKA_NODE_ID"] == i and env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == voters
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == replicas
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == replicas
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == min_isr == env["KAFKA_MIN_INSYNC_REPLICAS"]
    assert len({e["CLUSTER_ID"] for e in envs}) == 1
    assert len({services[n]["volumes"][0] for n in KAFKA_NODES}) == 3, "each node needs its own log dir"
    bootstrap = ",".join(f"{n}:9092" for n in KAFKA_NODES)
    for name, svc in services.items():
        if "build" in svc:
            assert svc["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == bootstrap, name
            assert set(KAFKA_NODES) <= set(svc["depends_on"]), name


# -- every component the CLI runs is a service; every other command is a tool, decided here ----------
#: Long-running commands: each must be the command of a compose service (the local schema registry is
#: stood in for by Confluent's, which production uses; the local MinIO of `s3 up` by the minio service).
CLI_COMPONENTS = {"simulator", "streams worker", "dispatch worker", "gateway worker", "aggregate worker",
                  "lakehouse sink", "lakehouse refine", "serve", "features push", "features serve",
                  "rag worker", "topics apply"}
STAND_INS = {"schema-registry serve": "schema-registry", "s3 up": "minio"}
#: One-shot, interactive or local-only commands (operators run them; no service).
CLI_TOOLS = {"usage", "query", "demo", "chaos", "report", "bench", "kafka up", "kafka down", "kafka status",
             "kafka fetch", "kafka credentials", "s3 down", "s3 status", "s3 build",
             "topics list", "topics drop", "keys create", "keys list", "keys revoke",
             "keys rotate", "keys disable", "catalog refresh", "catalog show", "config publish",
             "config reference", "policy backtest", "rag create", "rag ingest", "rag delete", "rag search",
             "rag demo", "lakehouse gold", "lakehouse maintain", "lakehouse check", "features apply",
             "features materialize", "features training-set", "features online", "features index-docs",
             "features retrieve"}


def _cli_commands() -> set[str]:
    out: set[str] = set()

    def walk(node: Any, path: list[str]) -> None:
        if hasattr(node, "list_commands"):
            ctx = node.context_class(node)
            for name in node.list_commands(ctx):
                walk(node.get_command(ctx, name), [*path, name])
        else:
            out.add(" ".join(path))

    walk(typer.main.get_command(app), [])
    return out


def _service_commands() -> dict[str, str]:
    """Compose service -> the streamgate command it runs (its words before the first option)."""
    out = {}
    for name, svc in COMPOSE["services"].items():
        if "build" in svc:
            words = []
            for w in svc["command"]:
                if w.startswith("-"):
                    break
                words.append(w)
            out[name] = " ".join(words)
    return out


def test_every_cli_command_is_a_component_or_a_tool() -> None:
    """A new CLI command fails here until someone decides whether it is deployed as a service."""
    commands = _cli_commands()
    classified = CLI_COMPONENTS | set(STAND_INS) | CLI_TOOLS
    assert commands == classified, (f"unclassified: {sorted(commands - classified)}; "
                                    f"gone from the CLI: {sorted(classified - commands)}")
    assert not CLI_COMPONENTS & CLI_TOOLS


def test_every_component_the_cli_runs_has_a_service() -> None:
    running = set(_service_commands().values())
    assert running >= CLI_COMPONENTS, f"no compose service runs {sorted(CLI_COMPONENTS - running)}"
    for service in STAND_INS.values():
        assert service in COMPOSE["services"]
    assert set(_service_commands().values()) <= CLI_COMPONENTS, "a service runs a tool, not a component"


def test_streamgate_services_run_real_subcommands_from_the_repo_dockerfile() -> None:
    built = {n: s for n, s in COMPOSE["services"].items() if "build" in s}
    assert built, "no streamgate component services"
    for name, svc in built.items():
        dockerfile = Path(REPO_ROOT / svc["build"]["context"] / svc["build"].get("dockerfile", "Dockerfile"))
        assert dockerfile.exists(), f"{name}: {dockerfile} missing"
        assert _resolves(svc["command"]), f"{name}: `streamgate {' '.join(svc['command'])}` is no command"


def test_the_resolver_can_fail() -> None:
    assert _resolves(["topics", "apply"]) and not _resolves(["topics"]) and not _resolves(["nope", "run"])


# -- metrics: Prometheus scrapes what the components serve; the dashboard asks for what they export ----
COMPOSE_CONFIG = "ops/compose/streamgate.yaml"
#: streamgate command -> the component whose metrics port it serves on
SERVES = {("streams", "worker"): "streams_worker", ("dispatch", "worker"): "dispatcher",
          ("aggregate", "worker"): "aggregator", ("lakehouse", "sink"): "lakehouse_sink",
          ("simulator",): "simulator"}


def _component(command: list[str]) -> str | None:
    words = tuple(w for w in command if not w.startswith("-"))
    return next((c for cmd, c in SERVES.items() if words[:len(cmd)] == cmd), None)


def test_every_component_runs_in_compose_with_the_compose_config() -> None:
    services = {name: _component(s["command"]) for name, s in COMPOSE["services"].items() if "build" in s}
    assert set(COMPONENTS) <= set(services.values()), "a component that serves metrics has no service"
    for name, component in services.items():
        command = COMPOSE["services"][name]["command"]
        if component is not None:  # the compose config is what makes it listen beyond localhost
            assert command[command.index("--config") + 1] == COMPOSE_CONFIG, name


def test_prometheus_scrapes_each_component_service_on_its_configured_port() -> None:
    settings = load_settings(REPO_ROOT / COMPOSE_CONFIG, env={})
    assert settings.metrics.enabled and settings.metrics.host == "0.0.0.0"
    scrape = yaml.safe_load((REPO_ROOT / "ops/prometheus/prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in scrape["scrape_configs"]}
    service_of = {_component(s["command"]): n for n, s in COMPOSE["services"].items() if "build" in s}
    for component in COMPONENTS:
        [sd] = jobs[component]["dns_sd_configs"]
        assert sd["names"] == [service_of[component]] and sd["type"] == "A"
        assert sd["port"] == settings.metrics.port(component) > 0, component
    volumes = COMPOSE["services"]["prometheus"]["volumes"]
    assert "./ops/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in volumes


def _exported_names() -> set[str]:
    """Every sample name the components' metric families can produce."""
    import streamgate.observability.metrics as families

    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
                "gauge": ("",)}
    names = set()
    for value in vars(families).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names |= {family.name + s for s in suffixes[family.type]}
    return names


def _grafana_mounts() -> dict[str, Path]:
    grafana = COMPOSE["services"]["grafana"]
    return {target: REPO_ROOT / source for source, target, *_ in (v.split(":") for v in grafana["volumes"])}


def test_grafana_is_provisioned_from_the_repo_and_the_dashboard_queries_exported_metrics() -> None:
    mounts = _grafana_mounts()
    provisioning = mounts["/etc/grafana/provisioning"]
    [source] = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090" and "prometheus" in COMPOSE["services"]
    [provider] = yaml.safe_load((provisioning / "dashboards/streamgate.yml").read_text())["providers"]
    dashboards = mounts[provider["options"]["path"]]
    dashboard = json.loads((dashboards / "streamgate.json").read_text())
    exported = _exported_names()
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
    used = set()
    for expr in exprs:
        names = set(re.findall(r"\bstreamgate_[a-z0-9_]+", expr))
        assert names or expr.startswith("up"), f"no streamgate metric in {expr!r}"
        assert names <= exported, f"{expr!r} asks for {names - exported}, not exported"
        used |= names
        for component in re.findall(r'component="([^"]+)"', expr):
            assert component in COMPONENTS, expr
    # the list: throughput, lag, errors, latency histograms, breaker states, cache hit rate
    for needed in ("streamgate_events_in_total", "streamgate_consumer_lag", "streamgate_errors_total",
                   "streamgate_latency_seconds_bucket", "streamgate_circuit_breaker_state",
                   "streamgate_cache_lookups_total"):
        assert needed in used, needed


def test_the_metric_check_can_fail() -> None:
    names = _exported_names()
    assert "streamgate_events_in_total" in names
    assert "streamgate_events_in" not in names and "streamgate_nope_total" not in names


def test_the_image_holds_every_package() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    with open(REPO_ROOT / "pyproject.toml", "rb") as f:
        packages = tomllib.load(f)["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    for package in packages:
        assert f"COPY {package} ./{package}" in dockerfile, f"the image lacks {package}"


def test_the_lakehouse_lives_in_the_minio_service_bucket() -> None:
    """The compose config's s3:// root is on the MinIO service, with the credentials its root user has, in
    the bucket the minio-bucket service creates before any streamgate service starts."""
    from streamgate.storage import ObjectPath

    services = COMPOSE["services"]
    minio_env, env = services["minio"]["environment"], services["lakehouse-sink"]["environment"]
    settings = load_settings(REPO_ROOT / COMPOSE_CONFIG, env={k: str(v) for k, v in env.items()})
    root = settings.table_root()
    assert isinstance(root, ObjectPath) and root.options["AWS_ENDPOINT_URL"] == "http://minio:9000"
    assert root.options["AWS_ACCESS_KEY_ID"] == minio_env["MINIO_ROOT_USER"]
    assert root.options["AWS_SECRET_ACCESS_KEY"] == minio_env["MINIO_ROOT_PASSWORD"]
    assert root.options["AWS_CONDITIONAL_PUT"] == "etag"
    assert f"local/{root.bucket}" in " ".join(services["minio-bucket"]["entrypoint"])
    for name, svc in services.items():
        if "build" in svc:
            assert svc["depends_on"]["minio-bucket"]["condition"] == "service_completed_successfully", name
