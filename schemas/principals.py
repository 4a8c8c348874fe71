"""Principals and their ACLs as code (`schemas/principals.yaml`), next to the topics they guard.

Pure data: :func:`acl_rules` turns the spec into the exact set of ACL bindings a deployment (a topic
prefix and the principal names it uses) must have; streamgate/kafka/acls.py makes the cluster match it.
Least privilege is the rule: a principal may only do what a rule here allows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.topics import load_topic_specs

SPEC_FILE = Path(__file__).resolve().parent / "principals.yaml"

ResourceType = Literal["topic", "group", "transactional_id"]
PatternType = Literal["literal", "prefixed"]
Operation = Literal["read", "write", "all"]


class PrincipalSpecError(ValueError):
    """The principals spec is invalid (unknown topic, unknown key, duplicate)."""


class PrincipalSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    doc: str = ""
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    own_topics: tuple[str, ...] = Field(default=(), description="prefixes of topics it creates itself")
    groups: tuple[str, ...] = ()
    transactional_ids: tuple[str, ...] = ()


class _SpecFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    principals: dict[str, PrincipalSpec]


@dataclass(frozen=True, order=True)
class AclRule:
    """One ALLOW binding: `principal` may do `operation` on the resource (any host)."""

    principal: str
    resource_type: ResourceType
    name: str
    pattern: PatternType
    operation: Operation


def parse_principals(raw: Any, *, topics: Iterable[str], source: str = "<spec>") -> dict[str, PrincipalSpec]:
    try:
        spec = _SpecFile.model_validate(raw)
    except ValidationError as exc:
        raise PrincipalSpecError(f"invalid principals spec {source}: {exc}") from exc
    known = set(topics)
    for role, p in spec.principals.items():
        unknown = sorted((set(p.read) | set(p.write)) - known)
        if unknown:
            raise PrincipalSpecError(f"invalid principals spec {source}: {role} names topics not in "
                                     f"schemas/topics.yaml: {', '.join(unknown)}")
    return spec.principals


@cache
def load_principals(path: Path = SPEC_FILE) -> dict[str, PrincipalSpec]:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PrincipalSpecError(f"cannot read principals spec {path}: {exc}") from exc
    return parse_principals(raw, topics=[t.name for t in load_topic_specs()], source=str(path))


def acl_rules(principals: Mapping[str, PrincipalSpec], names: Mapping[str, str],
              prefix: str = "") -> set[AclRule]:
    """Every ACL the deployment needs: `names` maps a role to its principal's name, `prefix` is the
    deployment's topic prefix (prepended to topics, groups and transactional ids alike)."""
    rules: set[AclRule] = set()
    for role, spec in principals.items():
        who = names[role]
        rules |= {AclRule(who, "topic", prefix + t, "literal", "read") for t in spec.read}
        rules |= {AclRule(who, "topic", prefix + t, "literal", "write") for t in spec.write}
        rules |= {AclRule(who, "topic", prefix + t, "prefixed", "all") for t in spec.own_topics}
        rules |= {AclRule(who, "group", prefix + g, "prefixed", "read") for g in spec.groups}
        rules |= {AclRule(who, "transactional_id", prefix + t, "prefixed", "write")
                  for t in spec.transactional_ids}
    return rules
