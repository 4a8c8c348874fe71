"""The feature repo's objects: entities, sources and feature views over the lakehouse's feature tables.

Built for given Settings because table locations depend on the state directory. `streamgate features
apply` applies exactly these; `features/feature_repo/repo.py` exposes the same objects to the plain
`feast` CLI. A new feature is a field here (or a new view), then `streamgate features apply`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
from feast.data_format import DeltaFormat
from feast.types import Array, Float32, Float64, Int64, String

from features.tables import EMBEDDING_DIM, table_path
from streamgate.config import Settings

#: Pushed features older than this are not served (a stopped pusher must not keep routing on stale data).
STREAM_TTL = timedelta(minutes=10)

_USAGE_FIELDS = [Field(name=n, dtype=Int64) for n in (
    "minute_start_ms", "requests_1m", "tokens_1m", "day_start_ms", "spend_today_nanousd",
    "month_start_ms", "spend_month_nanousd")]


@dataclass(frozen=True)
class Definitions:
    team: Entity
    api_key: Entity
    target: Entity
    chunk: Entity
    provider_health: FeatureView
    team_usage: FeatureView
    key_usage: FeatureView
    team_daily: FeatureView
    provider_daily: FeatureView
    doc_chunks: FeatureView
    routing: FeatureService
    request_cost_model: FeatureService

    def objects(self) -> list[Any]:
        return [getattr(self, f.name) for f in fields(self)]


def _delta(settings: Settings, name: str) -> FileSource:
    return FileSource(name=name, path=str(table_path(settings, name)), file_format=DeltaFormat(),
                      timestamp_field="event_timestamp")


def _pushed(settings: Settings, name: str) -> PushSource:
    return PushSource(name=f"{name}_push", batch_source=_delta(settings, name))


def build(settings: Settings) -> Definitions:
    team = Entity(name="team", join_keys=["team"], value_type=ValueType.STRING, description="a gateway team")
    api_key = Entity(name="api_key", join_keys=["api_key_id"], value_type=ValueType.STRING,
                     description="an API key, by its hash (the key itself is never stored)")
    target = Entity(name="target", join_keys=["target"], value_type=ValueType.STRING,
                    description="a provider and model, 'provider/model' (as the aggregates name them)")
    chunk = Entity(name="chunk", join_keys=["chunk_id"], value_type=ValueType.STRING,
                   description="a chunk of a document in the RAG collection")
    provider_health = FeatureView(
        name="provider_health", entities=[target], ttl=STREAM_TTL,
        source=_pushed(settings, "provider_health"),
        schema=[Field(name="latency_p50_ms", dtype=Float64), Field(name="latency_p95_ms", dtype=Float64),
                Field(name="error_rate", dtype=Float64), Field(name="attempts_5m", dtype=Int64)],
        description="latency p50/p95 and error rate over the last minutes, pushed from usage.aggregates")
    team_usage = FeatureView(name="team_usage", entities=[team], ttl=timedelta(days=32),
                             source=_pushed(settings, "team_usage"), schema=_USAGE_FIELDS,
                             description="requests and tokens this minute, spend today and this month")
    key_usage = FeatureView(name="key_usage", entities=[api_key], ttl=timedelta(days=32),
                            source=_pushed(settings, "key_usage"), schema=_USAGE_FIELDS,
                            description="per API key: request rate, tokens, spend today and this month")
    team_daily = FeatureView(
        name="team_daily", entities=[team], ttl=timedelta(days=2), source=_delta(settings, "team_daily"),
        schema=[Field(name="day_requests", dtype=Int64), Field(name="day_tokens", dtype=Int64),
                Field(name="day_cost_nanousd", dtype=Int64)],
        description="the last closed day's totals, from gold daily_cost")
    provider_daily = FeatureView(
        name="provider_daily", entities=[target], ttl=timedelta(days=2),
        source=_delta(settings, "provider_daily"),
        schema=[Field(name="day_latency_p95_ms", dtype=Float64), Field(name="day_error_rate", dtype=Float64),
                Field(name="day_fallback_rate", dtype=Float64)],
        description="the last closed day's latency and error rates, from gold provider_daily")
    doc_chunks = FeatureView(
        name="doc_chunks", entities=[chunk], ttl=timedelta(days=3650), source=_delta(settings, "doc_chunks"),
        schema=[Field(name="source", dtype=String), Field(name="text", dtype=String),
                Field(name="embedding", dtype=Array(Float32), vector_index=True, vector_length=EMBEDDING_DIM,
                      vector_search_metric="cosine")],
        description="the project's docs, chunked and embedded with all-MiniLM-L6-v2")
    routing = FeatureService(name="routing", features=[provider_health])
    request_cost_model = FeatureService(
        name="request_cost_model",
        features=[provider_health, team_usage[["requests_1m", "spend_today_nanousd"]], provider_daily,
                  team_daily])
    return Definitions(team, api_key, target, chunk, provider_health, team_usage, key_usage, team_daily,
                       provider_daily, doc_chunks, routing, request_cost_model)
