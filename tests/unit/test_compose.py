"""docker-compose.yml cannot run here (no Docker engine), so it is checked: services, dependencies, and
every streamgate command resolved against the real CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml

from streamgate.cli.main import app
from streamgate.config import REPO_ROOT

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
    assert {"kafka", "schema-registry", "redis", "postgres", "prometheus"} <= set(services)
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
