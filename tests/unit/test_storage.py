"""Table locations and the one storage-options builder (pure logic; the server is tested in integration)."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from lakehouse.spark import s3a_conf, spark_uri
from streamgate.config import ObjectStoreSettings, Settings
from streamgate.storage import ObjectPath, is_uri, options_of, storage_options


def test_an_object_path_joins_like_a_path_and_never_prints_its_secret() -> None:
    root = ObjectPath("s3://bucket/pre/fix/", {"AWS_SECRET_ACCESS_KEY": "hush"})
    table = root / "bronze" / Path("rag/chunks")
    assert str(table) == "s3://bucket/pre/fix/bronze/rag/chunks"
    assert (table.name, table.parent.name, table.bucket, table.key) == ("chunks", "rag", "bucket",
                                                                        "pre/fix/bronze/rag/chunks")
    assert table.options is root.options and options_of(table) == {"AWS_SECRET_ACCESS_KEY": "hush"}
    assert "hush" not in repr(table) + str(table)
    assert ObjectPath("s3a://bucket/x", {}) == ObjectPath("s3://bucket/x", {})
    assert options_of(Path("/tmp/t")) is None and is_uri("s3://b") and not is_uri("/data/lakehouse")


def test_storage_options_for_a_local_minio_and_for_aws() -> None:
    creds = {"access_key_id": SecretStr("k"), "secret_access_key": SecretStr("s")}
    minio = storage_options(ObjectStoreSettings(endpoint="http://127.0.0.1:9000", **creds))
    assert minio == {"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
                     "AWS_ALLOW_HTTP": "true", "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false",
                     "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_CONDITIONAL_PUT": "etag"}
    aws = storage_options(ObjectStoreSettings(region="eu-west-1", path_style=False, commit_protocol="unsafe"))
    assert aws == {"AWS_REGION": "eu-west-1", "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}  # credentials: the SDK's


def test_table_root_is_a_path_or_an_object_path(tmp_path: Path) -> None:
    local = Settings(state_dir=tmp_path)
    assert local.table_root() == tmp_path / "lakehouse"
    remote = Settings.model_validate({"state_dir": str(tmp_path), "lakehouse": {
        "root": "s3://b/lake", "object_store": {"endpoint": "https://minio.internal:9000"}}})
    root = remote.table_root()
    assert isinstance(root, ObjectPath) and str(root / "gold") == "s3://b/lake/gold"
    assert "AWS_ALLOW_HTTP" not in root.options  # https


def test_spark_gets_the_same_options_as_s3a_settings() -> None:
    root = ObjectPath("s3://b/lake", storage_options(ObjectStoreSettings(
        endpoint="http://127.0.0.1:9000", access_key_id=SecretStr("k"), secret_access_key=SecretStr("s"))))
    conf = s3a_conf(root)
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert (conf["spark.hadoop.fs.s3a.access.key"], conf["spark.hadoop.fs.s3a.secret.key"]) == ("k", "s")
    assert spark_uri(root / "bronze") == "s3a://b/lake/bronze" and s3a_conf(Path("/x")) == {}
