"""The gateway policy: teams, access, validation limits, guardrail rules and routing, in one YAML document.

Declarative and versioned: every verdict and routed event names the version it was decided under, and a
new version arriving on the config topic replaces the old one without a restart.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from streamgate.config import REPO_ROOT

GATEWAY_FILE = REPO_ROOT / "config" / "gateway.yaml"
PiiAction = Literal["allow", "redact", "block"]
Strategy = Literal["single", "loadbalance", "fallback", "conditional", "latency"]
#: Regions whose national-format phone numbers the PII scanner recognises when a policy names none: the
#: G20, the EU/EFTA countries and other large markets. International numbers (+CC, 00CC) count for every
#: country whatever the list.
DEFAULT_PHONE_REGIONS: tuple[str, ...] = (
    "US", "CA", "MX", "BR", "AR", "GB", "IE", "FR", "DE", "AT", "CH", "BE", "NL", "LU", "IT", "ES", "PT",
    "SE", "NO", "DK", "FI", "IS", "PL", "CZ", "SK", "HU", "RO", "BG", "GR", "HR", "SI", "EE", "LV", "LT",
    "TR", "RU", "UA", "IL", "AE", "SA", "ZA", "NG", "EG", "IN", "PK", "CN", "HK", "TW", "JP", "KR", "SG",
    "MY", "ID", "PH", "TH", "VN", "AU", "NZ",
)
#: Entity types found by the NER detector (shared/guardrails/ner.py). It costs milliseconds per KB, so
#: it runs only for teams whose policy names one of these explicitly: `pii_default` does not reach them.
NER_ENTITY_TYPES: tuple[str, ...] = ("PERSON", "LOCATION", "ORGANIZATION")


class PolicyConfigError(ValueError):
    """The gateway policy document is invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _matches(value: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)


class KeyAccess(_Strict):
    """Narrower access for one API key (by its public id `key_...`, or its sha256: hash where
    authentication is off) within its team."""

    models: list[str] = ["*"]
    disabled: bool = False


class TeamConfig(_Strict):
    projects: list[str] = Field(min_length=1)
    #: Glob patterns over requested models/aliases AND the provider models a route may reach.
    models: list[str] = ["*"]
    providers: list[str] = ["*"]
    capabilities: list[Literal["stream", "json", "tools"]] = ["stream", "json", "tools"]
    keys: dict[str, KeyAccess] = {}
    #: Per-entity PII actions overriding the policy defaults for this team.
    pii: dict[str, PiiAction] = {}

    def may_use_model(self, model: str) -> bool:
        allowed = self._allowed_models.get(model)
        if allowed is None:  # names are routes' and the catalog's (validation ran first): a bounded set
            allowed = self._allowed_models[model] = _matches(model, self.models)
        return allowed

    def may_use_provider(self, provider: str) -> bool:
        allowed = self._allowed_providers.get(provider)
        if allowed is None:
            allowed = self._allowed_providers[provider] = _matches(provider, self.providers)
        return allowed

    # glob answers per name, asked for every request and every target of its route; a new policy
    # version is a new object, so these never outlive the patterns they were computed from
    @cached_property
    def _allowed_models(self) -> dict[str, bool]:
        return {}

    @cached_property
    def _allowed_providers(self) -> dict[str, bool]:
        return {}


class ValidationConfig(_Strict):
    max_prompt_chars: int = Field(default=200_000, gt=0)
    max_messages: int = Field(default=512, gt=0)
    max_tokens_cap: int = Field(default=200_000, gt=0)
    dedup_window_s: int = Field(default=600, gt=0)


class GuardrailConfig(_Strict):
    pii: dict[str, PiiAction] = {}
    pii_default: PiiAction = "redact"
    #: ISO 3166 regions whose national-format phone numbers count as PHONE (libphonenumber's metadata).
    phone_regions: list[str] = Field(default_factory=lambda: list(DEFAULT_PHONE_REGIONS), min_length=1)
    deny_patterns: list[str] = []
    blocked_topics: list[str] = []
    max_prompt_tokens: int = Field(default=32_000, gt=0)

    @field_validator("deny_patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        import re

        for p in patterns:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"deny pattern {p!r} is not a valid regex: {exc}") from exc
        return patterns

    @field_validator("phone_regions")
    @classmethod
    def _known_regions(cls, regions: list[str]) -> list[str]:
        import phonenumbers

        unknown = [r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(f"unknown phone regions {unknown} (ISO 3166 codes in upper case, e.g. 'DE')")
        return regions


class Target(_Strict):
    provider: str
    model: str
    region: str = "us"
    timeout_ms: int = Field(default=30_000, gt=0)
    weight: float = Field(default=1.0, ge=0)


class Condition(_Strict):
    """`when` uses Mongo-style operators over request fields: metadata.x, tags.x, prompt_chars, model…"""

    when: dict[str, Any]
    targets: list[Target] = Field(min_length=1)


class Route(_Strict):
    strategy: Strategy = "single"
    targets: list[Target] = Field(min_length=1)
    conditions: list[Condition] = []
    #: Tried in order after the chosen target fails.
    fallbacks: list[Target] = []
    #: For `latency`: targets whose p95 exceeds this are avoided while an alternative is healthy.
    max_p95_ms: float | None = None

    @model_validator(mode="after")
    def _strategy_fits(self) -> Route:
        if self.strategy == "single" and len(self.targets) != 1:
            raise ValueError("strategy 'single' takes exactly one target (use fallbacks for the rest)")
        if self.strategy == "conditional" and not self.conditions:
            raise ValueError("strategy 'conditional' needs at least one condition")
        return self


class RoutingConfig(_Strict):
    #: Model names and aliases callers may ask for.
    routes: dict[str, Route]
    #: Providers that serve any catalog model directly when no route names it (empty: routes only).
    passthrough_providers: list[str] = []


class BudgetLimit(_Strict):
    """Limits for a team (key `team`) or one API key (key `team/key_...`, its public id; `team/sha256:...`
    where authentication is off); None = unlimited."""

    requests_per_minute: int | None = Field(default=None, gt=0)
    tokens_per_minute: int | None = Field(default=None, gt=0)
    daily_nanousd: int | None = Field(default=None, gt=0)
    monthly_nanousd: int | None = Field(default=None, gt=0)
    #: Fraction of a limit at which a soft alert is raised (the hard limit rejects).
    soft_ratio: float = Field(default=0.8, gt=0, le=1)


class RagCollection(_Strict):
    """A team's document collection for RAG: who owns it, who may read it, how it is cut and embedded.

    It lives in the policy because reading it is an access decision the request path takes per request
    (`rag: <name>` tag), beside the team's models and PII actions, and the policy already reaches every
    worker live through the config topic. `streamgate rag create` adds one.
    """

    owner: str
    #: Teams that may retrieve from it besides the owner; "*" for every team.
    readers: list[str] = []
    description: str = ""
    #: Chunks are cut at headings and paragraphs to at most this many characters...
    chunk_chars: int = Field(default=900, ge=100, le=20_000)
    #: ...repeating this many characters of the previous chunk when a paragraph must be cut.
    chunk_overlap: int = Field(default=100, ge=0, le=2_000)
    #: The embedding model (the one shipped, run with numpy: shared/embeddings/minilm.py).
    embedding_model: Literal["all-MiniLM-L6-v2"] = "all-MiniLM-L6-v2"
    #: Passages added to a tagged request.
    top_k: int = Field(default=3, ge=1, le=20)

    def may_read(self, team: str) -> bool:
        return team == self.owner or "*" in self.readers or team in self.readers


class GatewayPolicy(_Strict):
    version: str
    teams: dict[str, TeamConfig]
    validation: ValidationConfig = ValidationConfig()
    guardrails: GuardrailConfig = GuardrailConfig()
    budgets: dict[str, BudgetLimit] = {}
    routing: RoutingConfig
    #: Document collections teams registered for RAG (name -> collection).
    rag_collections: dict[str, RagCollection] = {}

    @model_validator(mode="after")
    def _collection_owners_exist(self) -> GatewayPolicy:
        for name, c in self.rag_collections.items():
            unknown = sorted({c.owner, *c.readers} - set(self.teams) - {"*"})
            if unknown:
                raise ValueError(f"rag collection {name!r} names unknown teams: {', '.join(unknown)}")
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", name):
                raise ValueError(f"rag collection name {name!r}: lowercase letters, digits, - and _ only")
        return self

    @cached_property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:12]

    def pii_action(self, team: str, entity: str) -> PiiAction:
        team_cfg = self.teams.get(team)
        if team_cfg is not None and entity in team_cfg.pii:
            return team_cfg.pii[entity]
        default = "allow" if entity in NER_ENTITY_TYPES else self.guardrails.pii_default
        return self.guardrails.pii.get(entity, default)


def parse_policy(raw: Any, source: str = "<policy>") -> GatewayPolicy:
    try:
        return GatewayPolicy.model_validate(raw)
    except ValidationError as exc:
        raise PolicyConfigError(f"invalid gateway policy {source}:\n{exc}") from exc


def load_policy(path: Path = GATEWAY_FILE) -> GatewayPolicy:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyConfigError(f"cannot read gateway policy {path}: {exc}") from exc
    return parse_policy(raw, str(path))
