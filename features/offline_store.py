"""Feast's DuckDB offline store, reading Delta tables through delta-rs.

Feast's DuckDB store reads Delta with DuckDB's `delta` extension, which DuckDB downloads at first use
from its own server; a machine that reaches only package registries (this one, CI) cannot. The
project already reads Delta with delta-rs (`deltalake`), so this store hands Feast's ibis planner an
Arrow table read by delta-rs instead; everything else (point-in-time joins, materialization) is
Feast's DuckDB store unchanged. Feature tables are small (one row per entity and push or day).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import ibis
from feast.data_format import DeltaFormat
from feast.infra.offline_stores import duckdb as feast_duckdb
from feast.infra.offline_stores.file_source import FileSource
from feast.infra.offline_stores.ibis import (
    get_historical_features_ibis,
    pull_all_from_table_or_query_ibis,
    pull_latest_from_table_or_query_ibis,
)
from feast.infra.offline_stores.offline_store import RetrievalJob
from pydantic import StrictStr

from shared.tables.delta import open_table
from streamgate.storage import ObjectPath, is_uri

TYPE = "features.offline_store.DeltaDuckDBOfflineStore"


class DeltaDuckDBOfflineStoreConfig(feast_duckdb.DuckDBOfflineStoreConfig):
    type: StrictStr = TYPE


#: Storage options of the lakehouse's object store when its root is an `s3://` URI, set by
#: features/store.py from the settings (Feast builds this store from feature_store.yaml, which must not
#: hold credentials).
_STORAGE: dict[str, str] = {}


def use_storage(options: dict[str, str] | None) -> None:
    _STORAGE.clear()
    _STORAGE.update(options or {})


def read_source(data_source: Any, repo_path: str) -> Any:
    if isinstance(data_source, FileSource) and isinstance(data_source.file_format, DeltaFormat):
        path = data_source.path
        table = open_table(ObjectPath(path, dict(_STORAGE)) if is_uri(path) else path)
        return ibis.memtable(table.to_pyarrow_table())
    return feast_duckdb._read_data_source(data_source, repo_path)


def _io(config: Any) -> dict[str, Any]:
    return {"data_source_reader": read_source, "data_source_writer": feast_duckdb._write_data_source,
            "staging_location": config.offline_store.staging_location,
            "staging_location_endpoint_override": config.offline_store.staging_location_endpoint_override}


class DeltaDuckDBOfflineStore(feast_duckdb.DuckDBOfflineStore):
    @staticmethod
    def pull_latest_from_table_or_query(
        config: Any, data_source: Any, join_key_columns: list[str], feature_name_columns: list[str],
        timestamp_field: str, created_timestamp_column: str | None, start_date: datetime,
        end_date: datetime,
    ) -> RetrievalJob:
        return pull_latest_from_table_or_query_ibis(
            config=config, data_source=data_source, join_key_columns=join_key_columns,
            feature_name_columns=feature_name_columns, timestamp_field=timestamp_field,
            created_timestamp_column=created_timestamp_column, start_date=start_date, end_date=end_date,
            **_io(config))

    @staticmethod
    def get_historical_features(
        config: Any, feature_views: list[Any], feature_refs: list[str], entity_df: Any, registry: Any,
        project: str, full_feature_names: bool = False, filter_by_created_timestamp: bool = False,
    ) -> RetrievalJob:
        return get_historical_features_ibis(
            config=config, feature_views=feature_views, feature_refs=feature_refs, entity_df=entity_df,
            registry=registry, project=project, full_feature_names=full_feature_names,
            filter_by_created_timestamp=filter_by_created_timestamp, **_io(config))

    @staticmethod
    def pull_all_from_table_or_query(
        config: Any, data_source: Any, join_key_columns: list[str], feature_name_columns: list[str],
        timestamp_field: str, created_timestamp_column: str | None = None,
        start_date: datetime | None = None, end_date: datetime | None = None,
    ) -> RetrievalJob:
        return pull_all_from_table_or_query_ibis(
            config=config, data_source=data_source, join_key_columns=join_key_columns,
            feature_name_columns=feature_name_columns, timestamp_field=timestamp_field,
            created_timestamp_column=created_timestamp_column, start_date=start_date, end_date=end_date,
            **_io(config))
