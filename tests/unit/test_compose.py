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


def test_infrastructure_services_exist() -> None:
    services = COMPOSE["services"]
    assert {"kafka", "schema-registry", "redis", "postgres", "prometheus", "grafana"} <= set(services)
    assert "apache/kafka" in services["kafka"]["image"]
    assert services["kafka"]["environment"]["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == 1


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
