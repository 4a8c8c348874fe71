"""Open and write Delta tables wherever they live (local directory or S3-compatible object storage).

Every stage opens its tables through these, so the storage options an `s3://` location needs (endpoint,
region, credentials, the conditional-PUT commit protocol: streamgate/storage.py) are passed everywhere,
and a local path works as before.
"""

from __future__ import annotations

from typing import Any

from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import TableNotFoundError

from streamgate.storage import ObjectPath, TablePath, options_of

# delta-rs gives up after 15 lost races (CommitFailedError "Failed to commit transaction: 15"). Appends
# never conflict with one another, so a lost race only means another writer's commit came first; with
# several writers on one table (sinks scaled out, a slow object store) one of them can lose 15 in a row,
# which would fail a batch that had nothing wrong with it.
APPEND_COMMIT_RETRIES = 200


def append_commit(transactions: list[Transaction]) -> CommitProperties:
    """Commit properties for an append that records, in the same commit, what it has applied
    (`transactions`: app id -> version, the sinks' Kafka offsets), trying again after up to
    APPEND_COMMIT_RETRIES lost races."""
    return CommitProperties(app_transactions=transactions, max_commit_retries=APPEND_COMMIT_RETRIES)


def open_table(path: TablePath | str, **kwargs: Any) -> DeltaTable:
    """The Delta table at `path` (raises deltalake's TableNotFoundError when there is none)."""
    return DeltaTable(str(path), storage_options=options_of(path), **kwargs)


def open_or_none(path: TablePath) -> DeltaTable | None:
    try:
        return open_table(path)
    except TableNotFoundError:
        return None


def write_table(path: TablePath | DeltaTable, data: Any, **kwargs: Any) -> None:
    """`write_deltalake` to `path` (or to an open table, which carries its own options)."""
    if isinstance(path, DeltaTable):
        write_deltalake(path, data, **kwargs)
    else:
        write_deltalake(str(path), data, storage_options=options_of(path), **kwargs)


def is_remote(path: TablePath) -> bool:
    return isinstance(path, ObjectPath)
