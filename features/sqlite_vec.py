"""Make Feast's SQLite online store load sqlite-vec, so `retrieve_online_documents_v2` works.

Two gaps, both outside streamgate: Feast 0.67 loads the extension only on Python 3.10, and a Python
built without loadable SQLite extensions (pyenv's default here) cannot load it at all. When the
interpreter's `sqlite3` lacks `enable_load_extension`, Feast's SQLite module is pointed at pysqlite3
(the same DB-API module with a bundled SQLite that allows extensions); every connection Feast opens
then loads sqlite-vec. Only that one Feast module is changed; the rest of the process keeps `sqlite3`.

A third: each vector query copies the view's vectors into a `vec_table` it never drops, so the second
query fails on a duplicate rowid. The scratch table is dropped before each query (the copy is rebuilt
every time anyway; for a collection of a few thousand chunks that is milliseconds).
"""

from __future__ import annotations

import functools
import sqlite3
from datetime import date, datetime
from types import ModuleType
from typing import Any


def _dbapi() -> ModuleType:
    if hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3
    try:
        from pysqlite3 import dbapi2
    except ImportError as exc:  # pragma: no cover - a dependency on Linux x86_64
        raise RuntimeError("this Python's sqlite3 cannot load extensions and pysqlite3 is not installed; "
                           "vector search needs one of them") from exc
    module: ModuleType = dbapi2
    return module


@functools.cache
def enable() -> None:
    import sqlite_vec
    from feast.infra.online_stores import sqlite as feast_sqlite

    db = _dbapi()
    if db is not sqlite3:  # Feast registered its adapters on the stdlib module at import
        db.register_adapter(date, feast_sqlite.adapt_date_iso)
        db.register_adapter(datetime, feast_sqlite.adapt_datetime_epoch)
        db.register_converter("date", feast_sqlite.convert_date)
        db.register_converter("datetime", feast_sqlite.convert_datetime)
        db.register_converter("timestamp", feast_sqlite.convert_timestamp)
        feast_sqlite.sqlite3 = db

    def initialize(db_path: str, enable_sqlite_vec: bool = False) -> Any:
        conn = original(db_path, False)
        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.enable_load_extension(False)
        return conn

    original = feast_sqlite._initialize_conn
    feast_sqlite._initialize_conn = initialize

    store_class = feast_sqlite.SqliteOnlineStore
    retrieve = store_class.retrieve_online_documents_v2

    def retrieve_fresh(self: Any, config: Any, *args: Any, **kwargs: Any) -> Any:
        self._get_conn(config).execute("DROP TABLE IF EXISTS vec_table")
        return retrieve(self, config, *args, **kwargs)

    store_class.retrieve_online_documents_v2 = retrieve_fresh  # type: ignore[method-assign]
