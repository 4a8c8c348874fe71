"""Open and apply the Feast feature store for given Settings.

The feature_store.yaml is generated under `<state_dir>/features/` because every path in it (registry,
online store, the Delta tables) depends on the state directory; the definitions are in
`features/definitions.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml
from feast import FeatureStore

from features import offline_store, sqlite_vec
from features.definitions import Definitions, build
from features.tables import ensure_tables
from streamgate.config import Settings
from streamgate.storage import options_of


def store_dir(settings: Settings) -> Path:
    return settings.resolve(settings.features.dir)


def repo_config(settings: Settings) -> dict[str, Any]:
    cfg = settings.features
    base = store_dir(settings)
    online: dict[str, Any]
    if cfg.online_store == "redis":
        online = {"type": "redis", "connection_string": cfg.redis_url}
    elif cfg.online_store == "postgres":
        online = postgres_online(cfg.postgres_dsn)
    else:
        online = {"type": "sqlite", "path": str(base / "online.db"), "vector_enabled": True}
    return {
        "project": cfg.project,
        "provider": "local",
        "registry": {"registry_type": "file", "path": str(base / "registry.db"),
                     "cache_ttl_seconds": cfg.registry_ttl_s},
        "offline_store": {"type": offline_store.TYPE},
        "online_store": online,
        "entity_key_serialization_version": 3,
    }


def postgres_online(dsn: str) -> dict[str, Any]:
    """Feast's PostgreSQL online store with pgvector (vector search for `doc_chunks`) on the server `dsn`
    names; the password stays out of the generated file (Feast expands ${PGPASSWORD} when it reads it)."""
    url = urlparse(dsn)
    if url.password:
        raise ValueError("features.postgres_dsn must not hold a password: set PGPASSWORD instead")
    sslmode = parse_qs(url.query).get("sslmode", ["prefer"])[0]
    return {"type": "postgres", "host": url.hostname or "127.0.0.1", "port": url.port or 5432,
            "database": url.path.lstrip("/") or "postgres", "user": url.username or "postgres",
            "password": "${PGPASSWORD}", "sslmode": sslmode, "vector_enabled": True}


def write_config(settings: Settings) -> Path:
    path = store_dir(settings) / "feature_store.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(repo_config(settings), sort_keys=False))
    return path


def open_store(settings: Settings) -> FeatureStore:
    """The store as configured (no apply): what readers and the push worker use."""
    if settings.features.online_store == "sqlite":
        sqlite_vec.enable()
    path = write_config(settings)
    offline_store.use_storage(options_of(settings.table_root()))
    return FeatureStore(repo_path=str(path.parent), fs_yaml_file=path)


def apply(settings: Settings) -> tuple[FeatureStore, Definitions]:
    """Create missing feature tables, register every definition and set up the online tables."""
    ensure_tables(settings)
    store = open_store(settings)
    defs = build(settings)
    objects = defs.objects()
    if settings.features.online_store == "redis":  # no vector search on Redis: RAG stays on SQLite
        objects = [o for o in objects if o is not defs.doc_chunks]
    store.apply(objects)
    return store, defs
