"""Point-in-time correct training sets: predict a request's latency (and cost) from what was known
when it was sent.

Rows are answered requests from silver `request_facts` (label: `latency_ms`, `cost_nanousd`); each
row's features are joined by Feast's `get_historical_features` as of the request's `created_at`, so a
feature value stamped later than the request (a later push, a day that had not closed) never leaks in.
The result is a Delta table, `<lakehouse>/ml/request_latency` (`streamgate query "... from
ml_request_latency"`).
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
from feast import FeatureStore

from features.store import apply
from shared.tables.delta import open_table, write_table
from shared.tables.query import silver_root
from streamgate.config import Settings
from streamgate.storage import TablePath

#: the feature service (features/definitions.py) naming the model's features
SERVICE = "request_cost_model"
LABELS = ["latency_ms", "cost_nanousd"]


def training_path(settings: Settings) -> TablePath:
    return settings.table_root() / "ml" / "request_latency"


def requests_from_silver(settings: Settings) -> pd.DataFrame:
    """Answered, uncached requests: the entity rows (team, target, event time) with their labels."""
    facts = open_table(silver_root(settings) / "request_facts").to_pandas(
        columns=["request_id", "team", "provider", "model", "status", "cache_hit", "created_at", *LABELS])
    facts = facts[(facts["status"] == "ok") & ~facts["cache_hit"].fillna(False).astype(bool)]
    return pd.DataFrame({
        "request_id": facts["request_id"], "team": facts["team"],
        "target": facts["provider"] + "/" + facts["model"],
        "event_timestamp": pd.to_datetime(facts["created_at"], utc=True),
        **{label: facts[label] for label in LABELS}})


def training_set(settings: Settings, entity_df: pd.DataFrame,
                 store: FeatureStore | None = None) -> pd.DataFrame:
    """`entity_df` has `team`, `target` and `event_timestamp` (plus any labels, passed through)."""
    store = store or apply(settings)[0]
    job = store.get_historical_features(entity_df=entity_df, features=store.get_feature_service(SERVICE))
    out: pd.DataFrame = job.to_df()
    return out.sort_values("event_timestamp").reset_index(drop=True)


def build_training_set(settings: Settings, store: FeatureStore | None = None) -> tuple[TablePath, int]:
    """Silver requests joined with their features as of each request, written as a Delta table."""
    rows = training_set(settings, requests_from_silver(settings), store)
    path = training_path(settings)
    write_table(path, pa.Table.from_pandas(rows, preserve_index=False), mode="overwrite",
                schema_mode="overwrite")
    return path, len(rows)
