"""The import contracts: dependencies point one way, contracts -> foundation -> shared -> stages -> apps.

A stage meets another only through topics and `schemas`; what two stages need lives in `shared`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = {"schemas"}
FOUNDATION = {"streamgate"}
SHARED = {"shared"}
STAGES = {"streams", "gateway_consumer", "aggregation", "lakehouse", "features", "frontdoor"}
APPS = {"apps", "bench"}
PROJECT = CONTRACTS | FOUNDATION | SHARED | STAGES | APPS

#: what each layer may import from the project, besides its own package
ALLOWED: dict[str, set[str]] = {
    **{p: set() for p in CONTRACTS},
    **{p: CONTRACTS for p in FOUNDATION},
    **{p: CONTRACTS | FOUNDATION | SHARED for p in SHARED},
    **{p: CONTRACTS | FOUNDATION | SHARED for p in STAGES},
    **{p: PROJECT for p in APPS},
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def violations(package: str, root: Path = ROOT) -> list[str]:
    bad = []
    for path in sorted((root / package).rglob("*.py")):
        if "feature_repo/data" in path.as_posix():
            continue
        for line, module in _imports(path):
            top = module.split(".")[0]
            if top in PROJECT and top != package and top not in ALLOWED[package]:
                bad.append(f"{path.relative_to(root)}:{line} imports {module}")
    return bad


@pytest.mark.parametrize("package", sorted(PROJECT))
def test_dependencies_point_one_way(package: str) -> None:
    assert (ROOT / package).is_dir(), f"{package}/ is a layer of the tree; update the contracts if it moved"
    assert violations(package) == []


def test_the_contract_check_sees_each_kind_of_crossing(tmp_path: Path) -> None:
    """The check itself, on a constructed tree: every forbidden direction is reported, allowed ones not."""
    files = {
        "features/x.py": "from lakehouse.sink import run\nfrom shared.tables.query import run_query\n",
        "schemas/x.py": "import streamgate.config\n",
        "streamgate/x.py": "from streams.loop import RequestPath\nfrom schemas import make_codec\n",
        "shared/x.py": "from apps.cli.main import app\nfrom streamgate.config import Settings\n",
    }
    for name, source in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(source)
    packages = ("features", "schemas", "streamgate", "shared")
    found = [v for package in packages for v in violations(package, tmp_path)]
    assert found == ["features/x.py:1 imports lakehouse.sink", "schemas/x.py:1 imports streamgate.config",
                     "streamgate/x.py:1 imports streams.loop", "shared/x.py:1 imports apps.cli.main"]
