"""Topic names and the declarative topic spec (`schemas/topics.yaml`).

Stages refer to topics by their logical :class:`Topic` name and resolve the physical name with the
deployment's prefix, so several deployments (or test runs) can share one cluster.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SPEC_FILE = Path(__file__).resolve().parent / "topics.yaml"
_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


class Topic(StrEnum):
    REQUESTS = "requests"
    GUARDED = "requests.guarded"
    ROUTED = "requests.routed"
    REJECTED = "requests.rejected"
    RESPONSES = "responses"
    TELEMETRY = "telemetry"
    VERDICTS = "guardrail.verdicts"
    AGGREGATES = "usage.aggregates"
    AUDIT = "audit"
    DEADLETTER = "deadletter"
    CONFIG = "config"
    KEYS = "keys"
    REPLIES = "replies"
    REPLY_CHUNKS = "replies.chunks"
    DOCUMENTS = "documents"


class TopicSpecError(ValueError):
    """The topic spec file is invalid."""


def parse_retention(value: str | int) -> int:
    """Milliseconds from `7d`, `12h`, `30s`, a plain number of ms, or `forever` (-1)."""
    if isinstance(value, int):
        return value
    text = value.strip().lower()
    if text == "forever":
        return -1
    match = re.fullmatch(r"(\d+)\s*(ms|s|m|h|d)", text)
    if not match:
        raise ValueError(f"retention {value!r} is not a duration like 30s, 15m, 12h, 7d or 'forever'")
    return int(match.group(1)) * _UNITS_MS[match.group(2)]


def replication_for(brokers: int, wanted: int = 3, wanted_min_isr: int = 2) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) a topic gets on a cluster of `brokers`: the spec's
    wish capped at the cluster size, and min ISR at most one below it, so a cluster of three keeps
    accepting acks=all writes with one broker down and a single broker (1/1) works at all."""
    replicas = max(1, min(wanted, brokers))
    return replicas, max(1, min(wanted_min_isr, replicas - 1))


class TopicSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    value_schema: str
    partitions: int = Field(ge=1, le=1000)
    #: the replication the topic asks for; a smaller cluster gets as many replicas as it has brokers
    replication_factor: int = Field(ge=1, le=10)
    min_insync_replicas: int = Field(default=2, ge=1, le=10)
    retention_ms: int
    cleanup_policy: Literal["delete", "compact"]
    key: str = ""
    doc: str = ""
    config: dict[str, str] = Field(default_factory=dict)

    def topic_config(self) -> dict[str, str]:
        """Broker-side topic configs this spec pins."""
        return {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms), **self.config}

    def on_cluster(self, brokers: int) -> TopicSpec:
        """This spec as a cluster of `brokers` gets it: replication capped at the cluster size and
        min.insync.replicas pinned to match (schemas/topics.yaml never needs editing per cluster)."""
        replicas, min_isr = replication_for(brokers, self.replication_factor, self.min_insync_replicas)
        return self.model_copy(update={"replication_factor": replicas, "min_insync_replicas": min_isr,
                                       "config": {**self.config, "min.insync.replicas": str(min_isr)}})


class _Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    partitions: int = 2
    replication_factor: int = 3
    min_insync_replicas: int = 2
    retention: str | int = "7d"
    cleanup_policy: str = "delete"


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    value_schema: str
    partitions: int | None = None
    replication_factor: int | None = None
    min_insync_replicas: int | None = None
    retention: str | int | None = None
    cleanup_policy: str | None = None
    key: str = ""
    doc: str = ""
    config: dict[str, str] = Field(default_factory=dict)

    @field_validator("retention")
    @classmethod
    def _retention(cls, v: str | int | None) -> str | int | None:
        if v is not None:
            parse_retention(v)
        return v


class _SpecFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    defaults: _Defaults = _Defaults()
    topics: list[_Entry]


def parse_topic_specs(raw: Any, *, source: str = "<spec>", partitions: int | None = None) -> list[TopicSpec]:
    """`partitions`: the deployment's count for topics that do not pin their own (else the file's
    default)."""
    try:
        spec = _SpecFile.model_validate(raw)
        d = spec.defaults
        out = [
            TopicSpec(
                name=e.name, value_schema=e.value_schema, key=e.key, doc=e.doc, config=e.config,
                partitions=e.partitions or partitions or d.partitions,
                replication_factor=e.replication_factor or d.replication_factor,
                min_insync_replicas=e.min_insync_replicas or d.min_insync_replicas,
                retention_ms=parse_retention(e.retention if e.retention is not None else d.retention),
                cleanup_policy=e.cleanup_policy or d.cleanup_policy,  # type: ignore[arg-type]
            )
            for e in spec.topics
        ]
    except (ValidationError, ValueError) as exc:
        raise TopicSpecError(f"invalid topic spec {source}: {exc}") from exc
    names = [t.name for t in out]
    if len(set(names)) != len(names):
        raise TopicSpecError(f"invalid topic spec {source}: duplicate topic names")
    return out


@cache
def load_topic_specs(path: Path = SPEC_FILE, *, partitions: int | None = None) -> list[TopicSpec]:
    """The spec file's topics; `partitions` overrides the default count (`kafka.partitions`)."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise TopicSpecError(f"cannot read topic spec {path}: {exc}") from exc
    return parse_topic_specs(raw, source=str(path), partitions=partitions)


def physical_name(topic: Topic | str, prefix: str = "") -> str:
    return f"{prefix}{topic}"
