"""The configuration reference (docs/configuration.md), generated from the settings models.

Each key's type and default come from the pydantic model and its description from the `#:` comment
above the field (or the class docstring for a section), so the reference cannot drift from what the
loader accepts: a test regenerates it and compares.
"""

from __future__ import annotations

import inspect
import re
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from streamgate.config import ENV_BOOTSTRAP, ENV_CONFIG, ENV_REGISTRY, ENV_STATE_DIR, REPO_ROOT, Settings

DOC = REPO_ROOT / "docs" / "configuration.md"
_FIELD = re.compile(r"^\s+(\w+)\s*:")


def field_comments(model: type[BaseModel]) -> dict[str, str]:
    """field name -> the `#:` comment lines right above its declaration."""
    comments: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(model).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
        elif (match := _FIELD.match(line)) and match.group(1) in model.model_fields:
            if pending:
                comments[match.group(1)] = " ".join(pending)
            pending = []
        elif stripped:
            pending = []
    return comments


def _section(annotation: Any) -> type[BaseModel] | None:
    return annotation if inspect.isclass(annotation) and issubclass(annotation, BaseModel) else None


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in get_args(annotation))
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{args}]" if name != "Literal" else " | ".join(repr(a) for a in get_args(annotation))
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, Path) and str(value).startswith(str(Path.home())):
        value = "~/" + str(value.relative_to(Path.home()))
    if value in ({}, [], ""):
        return f"`{value!r}`"
    return f"`{value}`" if value is not None else "`null`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _rows(model: type[BaseModel], prefix: str, out: list[str]) -> list[tuple[str, type[BaseModel]]]:
    comments, nested = field_comments(model), []
    for name, info in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = info.annotation
        if (section := _section(annotation)) is not None:
            nested.append((key, section))
            continue
        if get_origin(annotation) is dict and (section := _section(get_args(annotation)[1])) is not None:
            nested.append((f"{key}.<name>", section))
        description = _cell(comments.get(name, ""))
        out.append(f"| `{key}` | {_cell(_type_name(annotation))} | {_default(info)} | {description} |")
    return nested


def render() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from `streamgate.config.Settings` by `streamgate config reference`; do not edit by hand.",
        "",
        "One YAML file (`config/streamgate.yaml`, or the file `--config` or `$" + ENV_CONFIG + "` names) is",
        "validated by these models; an unknown key or a wrong type stops the process with the offending",
        "path named. Environment overrides, read only by the loader: `" + ENV_BOOTSTRAP + "` (use that",
        "cluster, start nothing), `" + ENV_REGISTRY + "` (Confluent framing through a registry), `"
        + ENV_STATE_DIR + "`, and",
        "each provider's `api_key_env` variable (the key is kept as a secret, never logged or written).",
        "The gateway policy (teams, RBAC, guardrails, budgets, routes) is a separate file,",
        "`config/gateway.yaml`, published to the config topic with `streamgate config publish`.",
    ]
    queue: list[tuple[str, type[BaseModel]]] = [("", Settings)]
    while queue:
        prefix, model = queue.pop(0)
        title = prefix.rstrip(".") or "top level"
        doc = inspect.getdoc(model) if model.__doc__ else ""
        lines += ["", f"## {title}", ""]
        if doc and model is not Settings:
            lines += [doc.splitlines()[0], ""]
        lines += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        queue += [(f"{key}.", section) for key, section in _rows(model, prefix, lines)]
    return "\n".join(lines) + "\n"


def write(path: Path = DOC) -> Path:
    path.write_text(render())
    return path
