"""The lakehouse on a real S3-compatible server (MinIO, started by the `s3_server` fixture).

Concurrent Delta writers on S3 are safe only with a commit protocol the server enforces: here conditional
PUT (If-None-Match), so two writers racing for one log version cannot both win. The Kafka-driven tests
(sink kill -9, two sinks on one table, Spark) run on the bucket too: see the `lake` fixture.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from deltalake import Transaction
from deltalake.exceptions import CommitFailedError

from apps.demo.processes import write_config
from shared.tables.delta import append_commit, open_table, write_table
from shared.tables.query import find_tables, run_query
from streamgate.config import Settings, load_settings
from streamgate.objectstore import MinioServer, local_server
from streamgate.storage import ObjectPath
from tests.conftest import free_port, on_s3

WRITERS, COMMITS, ROWS = 4, 12, 50


def _batch(writer: int, commit: int) -> pa.Table:
    return pa.table({"writer": pa.array([writer] * ROWS, pa.int32()),
                     "commit": pa.array([commit] * ROWS, pa.int32()),
                     "row": pa.array(range(ROWS), pa.int32())})


def test_concurrent_writers_on_one_s3_table_lose_and_repeat_nothing(settings: Settings,
                                                                   s3_server: MinioServer) -> None:
    """Four writers append to one table at once, each commit carrying its application transaction
    (as the sink's offsets do, with the sink's commit properties: a writer that keeps losing the race
    keeps trying). Every row lands once, the log's versions are 0..N with no gap or overwrite, and each
    writer's last transaction version is its last commit."""
    settings, _ = on_s3(settings, s3_server)
    path = settings.table_root() / "bronze" / "contended"
    assert isinstance(path, ObjectPath) and path.options["AWS_CONDITIONAL_PUT"] == "etag"
    write_table(path, _batch(-1, -1).slice(0, 0))  # the table exists before the race
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def writer(i: int) -> None:
        try:
            table = open_table(path)  # each writer its own handle, stale as soon as another commits
            start.wait()
            for c in range(COMMITS):
                txn = append_commit([Transaction(f"writer-{i}", c)])
                write_table(table, _batch(i, c), mode="append", commit_properties=txn)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    table = open_table(path)
    data = table.to_pyarrow_table()
    keys = list(zip(*(data[c].to_pylist() for c in ("writer", "commit", "row")), strict=True))
    assert len(keys) == len(set(keys)) == WRITERS * COMMITS * ROWS
    assert table.version() == WRITERS * COMMITS
    assert sorted(h["version"] for h in table.history()) == list(range(WRITERS * COMMITS + 1))
    assert {i: table.transaction_version(f"writer-{i}") for i in range(WRITERS)} == \
        {i: COMMITS - 1 for i in range(WRITERS)}


def test_a_commit_that_lost_its_version_is_refused_by_the_server_not_overwritten(
        settings: Settings, s3_server: MinioServer) -> None:
    """A writer that would write log version N after another did gets a conflict from the server
    (conditional PUT); delta-rs then retries on N+1 for an append, or fails for a conflicting write."""
    settings, _ = on_s3(settings, s3_server)
    path = settings.table_root() / "t"
    write_table(path, _batch(0, 0))
    stale = open_table(path)
    write_table(open_table(path), _batch(1, 0), mode="overwrite")  # version 1 by someone else
    with pytest.raises(CommitFailedError):  # an overwrite read version 0: it must not silently win
        write_table(stale, _batch(2, 0), mode="overwrite")
    assert open_table(path).to_pyarrow_table()["writer"].to_pylist() == [1] * ROWS


def _signed_put(server: MinioServer, key: str, body: bytes, headers: dict[str, str]) -> int:
    """A raw S3 PUT signed with AWS Signature V4 (what delta-rs's object_store sends), returning the
    HTTP status: the test needs the server's own answer to a conditional request, not a client's."""
    url = urllib.parse.urlparse(f"{server.endpoint}/{key}")
    now = datetime.now(UTC)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload = hashlib.sha256(body).hexdigest()
    signed = {"host": url.netloc, "x-amz-content-sha256": payload, "x-amz-date": stamp}
    names = ";".join(sorted(signed))
    canonical = "\n".join(["PUT", url.path, "", *(f"{k}:{signed[k]}" for k in sorted(signed)), "", names,
                           payload])
    scope = f"{day}/us-east-1/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key_bytes = f"AWS4{server.secret_access_key}".encode()
    for part in (day, "us-east-1", "s3", "aws4_request"):
        key_bytes = hmac.new(key_bytes, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
    auth = (f"AWS4-HMAC-SHA256 Credential={server.access_key_id}/{scope}, SignedHeaders={names}, "
            f"Signature={signature}")
    request = urllib.request.Request(url.geturl(), data=body, method="PUT",
                                     headers={**signed, **headers, "Authorization": auth})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_the_server_refuses_a_second_create_of_one_commit_file(s3_server: MinioServer) -> None:
    """The commit protocol rests on this: `If-None-Match: *` on a log entry that exists is refused with
    412, so the writer that lost the race learns it instead of overwriting the winner's commit."""
    key = f"lake/{uuid.uuid4().hex}/_delta_log/00000000000000000001.json"
    create = {"If-None-Match": "*"}
    assert _signed_put(s3_server, key, b'{"commitInfo":{"writer":"a"}}', create) == 200
    assert _signed_put(s3_server, key, b'{"commitInfo":{"writer":"b"}}', create) == 412
    assert _signed_put(s3_server, key, b'{"commitInfo":{"writer":"c"}}', {}) == 200  # plain PUT: clobbers


def test_query_and_find_tables_over_the_bucket(settings: Settings, s3_server: MinioServer,
                                               tmp_path: Path) -> None:
    settings, env = on_s3(settings, s3_server)
    root = settings.table_root()
    write_table(root / "bronze" / "telemetry", pa.table({"cost_nanousd": [5, 7, 11]}))
    write_table(root / "gold" / "daily_cost", pa.table({"team": ["a"]}))
    assert set(find_tables(root)) == {"telemetry", "gold_daily_cost"}
    assert run_query(settings, "select sum(cost_nanousd) as c from telemetry").to_pylist() == [{"c": 23}]
    # the CLI, as an operator runs it: credentials from the environment, never in the config file
    config = write_config(settings, tmp_path / "streamgate.yaml")
    assert s3_server.secret_access_key not in config.read_text()
    exe = Path(sys.executable).parent / "streamgate"
    out = subprocess.run([str(exe), "query", "select sum(cost_nanousd) as total from telemetry",
                          "--config", str(config)], env=os.environ | env, capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert "23" in out.stdout
    assert s3_server.secret_access_key not in out.stdout + out.stderr


def test_credentials_come_from_the_variables_the_settings_name(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"lakehouse": {"root": "s3://b/p", "object_store": {
        "endpoint": "http://127.0.0.1:1", "access_key_id_env": "MY_KEY",
        "secret_access_key_env": "MY_SECRET"}}}))
    settings = load_settings(config, env={"MY_KEY": "k", "MY_SECRET": "s3cr3t-value"})
    root = settings.table_root()
    assert isinstance(root, ObjectPath) and root.options["AWS_SECRET_ACCESS_KEY"] == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(settings) + repr(root) + str(root)
    assert str(root / "bronze" / "x") == "s3://b/p/bronze/x" and (root / "bronze").name == "bronze"


def test_streamgate_s3_up_status_down(tmp_path: Path, s3_server: MinioServer) -> None:
    """The CLI starts its own server (the binary the fixture's server was built from), creates the
    lakehouse root's bucket with generated credentials, and stops it."""
    port = free_port()
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"state_dir": str(tmp_path / "state"), "lakehouse": {
        "root": "s3://demo/lakehouse", "object_store": {"endpoint": f"http://127.0.0.1:{port}",
                                                        "access_key_id_env": "UNSET_SG_KEY",
                                                        "secret_access_key_env": "UNSET_SG_SECRET"}}}))
    exe = Path(sys.executable).parent / "streamgate"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(exe), "s3", *args, "--config", str(config)], capture_output=True,
                              text=True, timeout=60, check=False)

    try:
        up = cli("up")
        assert up.returncode == 0, up.stderr
        settings = load_settings(config, env={})
        assert local_server(settings).status().running
        root = settings.table_root()  # generated credentials picked up from the state directory
        write_table(root / "bronze" / "t", pa.table({"x": [1]}))
        assert open_table(root / "bronze" / "t").to_pyarrow_table()["x"].to_pylist() == [1]
    finally:
        assert cli("down").returncode == 0
    assert not local_server(settings).status().running
