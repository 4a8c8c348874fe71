"""One loader for all streamgate configuration.

Every component reads its settings through :func:`load_settings`; nothing else in the code base reads
environment variables. The YAML file is validated by pydantic so a typo fails loudly at start-up
instead of silently falling back to a default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

#: Environment variables the loader honours (and the only ones the code base reads).
ENV_CONFIG = "STREAMGATE_CONFIG"
ENV_BOOTSTRAP = "KAFKA_BOOTSTRAP_SERVERS"
ENV_REGISTRY = "SCHEMA_REGISTRY_URL"
ENV_STATE_DIR = "STREAMGATE_STATE_DIR"

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_FILE = REPO_ROOT / "config" / "streamgate.yaml"


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalBrokerSettings(_Strict):
    """The single-node KRaft broker that `streamgate kafka up` runs when no cluster is configured."""

    port: int = Field(default=19092, ge=1, le=65535)
    controller_port: int = Field(default=19093, ge=1, le=65535)
    heap: str = "1g"
    #: Where the broker keeps its log segments; relative paths are under the state directory.
    data_dir: Path = Path("kafka")
    start_timeout_s: float = Field(default=90.0, gt=0)


class KafkaSettings(_Strict):
    #: An external cluster. When set (or KAFKA_BOOTSTRAP_SERVERS is), no local broker is started.
    bootstrap_servers: str | None = None
    #: Prepended to every topic name, so several deployments (or test runs) share one cluster.
    topic_prefix: str = ""
    local: LocalBrokerSettings = LocalBrokerSettings()

    @property
    def external(self) -> bool:
        return self.bootstrap_servers is not None

    def bootstrap(self) -> str:
        """The bootstrap servers clients connect to: the external cluster or the local broker."""
        return self.bootstrap_servers or f"127.0.0.1:{self.local.port}"


class SchemaRegistrySettings(_Strict):
    #: A Confluent-compatible schema registry. When unset, events use Avro single-object encoding
    #: resolved against the schemas in the repository.
    url: str | None = None


class ProviderSettings(_Strict):
    """How to reach one provider. Real credentials come from the environment variable named here."""

    kind: Literal["openai", "anthropic"] = "openai"
    base_url: str
    #: The environment variable holding the API key; the loader copies it into `api_key`.
    api_key_env: str | None = None
    #: Never logged, never in events (SecretStr prints as '**********').
    api_key: SecretStr | None = None
    #: Requests in flight to this provider at once, per dispatcher.
    max_concurrency: int = Field(default=512, ge=1)


class RetrySettings(_Strict):
    max_attempts: int = Field(default=3, ge=1, le=10)
    backoff_base_ms: float = Field(default=100.0, ge=0)
    backoff_max_ms: float = Field(default=4000.0, ge=0)
    #: A 429 asking to wait longer than this falls over to the next target instead of waiting.
    max_retry_after_s: float = Field(default=5.0, ge=0)


class BreakerSettings(_Strict):
    #: Outcomes remembered per provider/model; the breaker opens when at least `min_calls` of them
    #: are known and their error rate reaches `error_rate`.
    window: int = Field(default=20, ge=1)
    min_calls: int = Field(default=10, ge=1)
    error_rate: float = Field(default=0.5, gt=0, le=1)
    #: Seconds open before one probe call is let through (half-open).
    open_s: float = Field(default=5.0, gt=0)


class SemanticCacheSettings(_Strict):
    """Paraphrase matching on the last user message (gateway_consumer/cache/semantic.py)."""

    enabled: bool = True
    #: Teams whose requests may be answered by meaning ("*": all). Embedding costs ~3 ms of CPU per
    #: request (numpy MiniLM, batched), so it is opt-in where answers are reusable (FAQ-style traffic).
    teams: list[str] = ["support"]
    #: Cosine similarity a candidate needs before verification; 0.85 gave 1.000 precision and 0.88
    #: recall on bench/data/paraphrases.jsonl (streamgate bench semantic-cache).
    threshold: float = Field(default=0.85, gt=0, le=1)
    max_entries_per_scope: int = Field(default=10_000, ge=1)
    #: Longer messages skip the semantic cache: embedding cost grows with length (a 600-word prompt
    #: costs ~100x a question), and long prompts with context are rarely answered by a paraphrase.
    max_chars: int = Field(default=500, ge=1)
    model_dir: Path = Path.home() / ".cache" / "streamgate" / "models" / "all-MiniLM-L6-v2"

    def applies_to(self, team: str) -> bool:
        return self.enabled and ("*" in self.teams or team in self.teams)


class CacheSettings(_Strict):
    enabled: bool = True
    ttl_s: float = Field(default=3600.0, gt=0)
    max_entries: int = Field(default=100_000, ge=1)
    semantic: SemanticCacheSettings = SemanticCacheSettings()


class DispatchSettings(_Strict):
    """The gateway consumer: routed requests in, responses and per-attempt telemetry out."""

    group_id: str = "streamgate-dispatch"
    #: Requests in flight at once across providers (bounds memory).
    max_in_flight: int = Field(default=4096, ge=1)
    #: Outcomes and offsets are committed together in one Kafka transaction this often.
    commit_interval_ms: int = Field(default=100, ge=5)
    retry: RetrySettings = RetrySettings()
    breaker: BreakerSettings = BreakerSettings()
    cache: CacheSettings = CacheSettings()


class AggregationSettings(_Strict):
    """Telemetry in, windowed usage out (the source of budgets and cost reports)."""

    group_id: str = "streamgate-aggregator"
    #: An event may arrive this late (event time behind the partition's latest) and still update its window.
    grace_s: float = Field(default=30.0, ge=0)
    #: Changed aggregates and consumed offsets are committed together in one Kafka transaction this often.
    commit_interval_ms: int = Field(default=250, ge=10)


class LakehouseSettings(_Strict):
    """Kafka -> Delta Lake: where tables live and how the sink batches."""

    #: Table root; relative paths are under the state directory.
    root: Path = Path("lakehouse")
    group_id: str = "streamgate-lakehouse"
    #: A table is written when this many rows are buffered for it, or its oldest row is this old.
    batch_rows: int = Field(default=5_000, ge=1)
    flush_s: float = Field(default=5.0, gt=0)
    #: `streamgate lakehouse maintain` keeps this much history for time travel (audits); 7 days.
    vacuum_retention_hours: int = Field(default=168, ge=0)


class FeaturesSettings(_Strict):
    """The Feast feature store over the lakehouse (features/): where it lives and what the gateway reads."""

    #: Registry, online store (SQLite) and the generated feature_store.yaml; relative to the state directory.
    dir: Path = Path("features")
    project: str = "streamgate"
    #: `sqlite` (one file, default) or `redis` (production: shared by every gateway replica).
    online_store: Literal["sqlite", "redis"] = "sqlite"
    redis_url: str = "127.0.0.1:6379"
    #: How long a reader trusts its cached registry; a newly applied feature view is seen within this.
    registry_ttl_s: int = Field(default=60, ge=0)
    #: Where the router's provider health and the budget check read from: the static table / the
    #: aggregates topic (LiveUsage), or the Feast online store fed by `streamgate features push`.
    health_source: Literal["static", "feast"] = "static"
    usage_source: Literal["live", "feast"] = "live"
    #: Online reads are cached this long by the gateway readers (one SQLite read per target otherwise).
    read_cache_s: float = Field(default=1.0, ge=0)
    #: The push worker pushes changed entities this often.
    push_interval_s: float = Field(default=1.0, gt=0)
    #: Provider latency and error rate are taken over this many of the latest 1-minute windows.
    health_window_minutes: int = Field(default=5, ge=1, le=60)
    #: Requests tagged `rag: docs` get passages of the project's docs (`streamgate features index-docs`)
    #: added before routing. Off by default: it costs an embedding per tagged request.
    rag: bool = False


class SimulatorSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=18080, ge=1, le=65535)
    #: Per-model latency/error profiles (YAML); relative paths are under the repository.
    profiles: Path = Path("config/simulator.yaml")


class Settings(_Strict):
    #: Runtime state (broker logs, Delta tables, Feast registry); never inside the work tree by default.
    state_dir: Path = Path.home() / ".local" / "state" / "streamgate"
    kafka: KafkaSettings = KafkaSettings()
    schema_registry: SchemaRegistrySettings = SchemaRegistrySettings()
    providers: dict[str, ProviderSettings] = {}
    dispatch: DispatchSettings = DispatchSettings()
    aggregation: AggregationSettings = AggregationSettings()
    lakehouse: LakehouseSettings = LakehouseSettings()
    features: FeaturesSettings = FeaturesSettings()
    simulator: SimulatorSettings = SimulatorSettings()

    def resolve(self, path: Path) -> Path:
        """An absolute path: relative ones are taken under the state directory."""
        return path if path.is_absolute() else self.state_dir / path


def load_settings(path: str | Path | None = None, *, env: dict[str, str] | None = None) -> Settings:
    """Read the YAML config (explicit path, then $STREAMGATE_CONFIG, then the repo default), then
    apply the documented environment overrides."""
    environ = dict(os.environ) if env is None else env
    chosen = Path(path) if path else Path(environ[ENV_CONFIG]) if environ.get(ENV_CONFIG) else None
    raw: dict[str, Any] = {}
    source = chosen or DEFAULT_CONFIG_FILE
    if chosen is not None and not chosen.exists():
        raise ConfigError(f"config file {chosen} does not exist")
    if source.exists():
        try:
            loaded = yaml.safe_load(source.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {source} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {source} must hold a mapping at the top level")
        raw = loaded
    _apply_env(raw, environ)
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration in {source}:\n{exc}") from exc


def _apply_env(raw: dict[str, Any], environ: dict[str, str]) -> None:
    if environ.get(ENV_BOOTSTRAP):
        raw.setdefault("kafka", {})["bootstrap_servers"] = environ[ENV_BOOTSTRAP]
    if environ.get(ENV_REGISTRY):
        raw.setdefault("schema_registry", {})["url"] = environ[ENV_REGISTRY]
    if environ.get(ENV_STATE_DIR):
        raw["state_dir"] = environ[ENV_STATE_DIR]
    for provider in (raw.get("providers") or {}).values():
        if isinstance(provider, dict) and (var := provider.get("api_key_env")) and environ.get(var):
            provider["api_key"] = environ[var]
