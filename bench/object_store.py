"""Delta commits on the local S3 server (MinIO) against the local disk: what object storage costs the sink.

Baseline, measured in the same run: the same appends (5,000 rows each, with an application transaction
as the sink's offsets) to a table on the local disk. Then the same on a bucket of a MinIO started here
(free port, temporary data), one writer and four writers on one table at once (each commit that lost its
log version to another writer is refused by the server and retried by delta-rs on the next). The figures
bound the Delta commit rate per table that docs/scaling.md plans with.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from deltalake import Transaction

from bench.harness import write_result
from shared.tables.delta import append_commit, open_table, write_table
from streamgate.config import ObjectStoreSettings
from streamgate.objectstore import MinioServer
from streamgate.storage import ObjectPath, TablePath, storage_options

ROWS, COMMITS, WRITERS = 5_000, 20, 4


def _batch(rng: np.random.Generator, writer: int) -> pa.Table:
    return pa.table({"writer": pa.array(np.full(ROWS, writer, np.int32)),
                     "request_id": pa.array([uuid.uuid4().hex for _ in range(ROWS)]),
                     "cost_nanousd": pa.array(rng.integers(0, 10**6, ROWS)),
                     "latency_ms": pa.array(rng.random(ROWS) * 500)})


def _append(path: TablePath, writers: int) -> dict[str, float]:
    """`writers` threads each append COMMITS batches to one table; commits/s and rows/s overall."""
    rng = np.random.default_rng(7)
    batches = [[_batch(rng, w) for _ in range(COMMITS)] for w in range(writers)]
    write_table(path, batches[0][0].slice(0, 0))
    start = threading.Barrier(writers + 1)

    def run(w: int) -> None:
        table = open_table(path)
        start.wait()
        for c, batch in enumerate(batches[w]):
            txn = append_commit([Transaction(f"w{w}", c)])
            write_table(table, batch, mode="append", commit_properties=txn)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    table = open_table(path)
    assert table.version() == writers * COMMITS and table.to_pyarrow_dataset().count_rows() == \
        writers * COMMITS * ROWS, "a commit was lost"
    commits = writers * COMMITS
    return {"commits_per_s": commits / elapsed, "rows_per_s": commits * ROWS / elapsed,
            "ms_per_commit": elapsed * 1000 / commits}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        local = _append(Path(tmp) / "local" / "t", 1)
        server = MinioServer(Path(tmp) / "s3" / "data", f"http://127.0.0.1:{_free_port()}", "benchuser",
                             uuid.uuid4().hex)
        server.up()
        try:
            server.create_bucket("bench")
            from pydantic import SecretStr

            options = storage_options(ObjectStoreSettings(
                endpoint=server.endpoint, access_key_id=SecretStr(server.access_key_id),
                secret_access_key=SecretStr(server.secret_access_key)))
            one = _append(ObjectPath("s3://bench/one", options), 1)
            many = _append(ObjectPath("s3://bench/many", options), WRITERS)
        finally:
            server.down()
    result: dict[str, Any] = {"rows_per_commit": ROWS, "commits_per_writer": COMMITS,
                              "local_disk": local, "minio_1_writer": one, f"minio_{WRITERS}_writers": many,
                              "minio_vs_local_commit_rate": one["commits_per_s"] / local["commits_per_s"]}
    table = [
        ("local disk, 1 writer (baseline)", f"{local['commits_per_s']:.1f} commits/s, "
                                            f"{local['ms_per_commit']:.0f} ms each"),
        ("MinIO, 1 writer", f"{one['commits_per_s']:.1f} commits/s, {one['ms_per_commit']:.0f} ms each "
                            f"({result['minio_vs_local_commit_rate']:.2f}x local)"),
        (f"MinIO, {WRITERS} writers on one table", f"{many['commits_per_s']:.1f} commits/s in all, "
                                                   "none lost (conditional PUT)"),
        ("rows per commit", f"{ROWS:,} (rows/s: local {local['rows_per_s']:,.0f}, MinIO "
                            f"{one['rows_per_s']:,.0f})"),
    ]
    path = write_result("object-store", result, table)
    for k, v in table:
        print(f"{k}: {v}")
    print(f"written {path}")


if __name__ == "__main__":
    main()
