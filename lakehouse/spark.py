"""Read the tables with Apache Spark and Delta Lake, the reference reader.

pyspark comes from PyPI (the `spark` dependency group, installed by `make setup`); the delta-spark jars
from Maven Central through `ops/spark/pom.xml` (Spark's own `--packages` resolver does not go through
the proxy Maven is configured for here). Spark 4.0 with Delta 4.0. Tables on S3-compatible storage are
read through Hadoop's S3A filesystem (hadoop-aws and the AWS SDK modules it needs, `ops/spark-s3/pom.xml`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamgate.maven import maven_classpath
from streamgate.storage import ObjectPath, TablePath, options_of

POM = Path(__file__).resolve().parents[1] / "ops" / "spark" / "pom.xml"
S3A_POM = Path(__file__).resolve().parents[1] / "ops" / "spark-s3" / "pom.xml"
CACHE_DIR = Path.home() / ".cache" / "streamgate"


def delta_jars() -> list[str]:
    """delta-spark and delta-storage (Scala and ANTLR come with pyspark)."""
    classpath = maven_classpath(POM, "delta-spark", CACHE_DIR)
    return [jar for jar in classpath.split(":") if "/io/delta/" in jar]


#: Of the S3A classpath, only these are added: the rest (netty, Apache HTTP client, commons, slf4j) ships
#: with pyspark in newer versions.
_S3A_KEEP = ("/org/apache/hadoop/hadoop-aws/", "/software/amazon/", "/org/reactivestreams/", "/org/wildfly/")


def s3a_jars() -> list[str]:
    """Hadoop's S3A filesystem and the AWS SDK modules it loads (ops/spark-s3/pom.xml)."""
    classpath = maven_classpath(S3A_POM, "spark-s3a", CACHE_DIR)
    return [jar for jar in classpath.split(":") if any(keep in jar for keep in _S3A_KEEP)]


def s3a_conf(root: TablePath) -> dict[str, str]:
    """Spark's Hadoop settings to reach the object store of an `s3://` root, from the same storage
    options delta-rs uses (streamgate/storage.py); empty for a local root."""
    options = options_of(root)
    if not options:
        return {}
    endpoint = options.get("AWS_ENDPOINT_URL", "")
    path_style = options.get("AWS_VIRTUAL_HOSTED_STYLE_REQUEST") != "true"
    conf = {"fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
            "fs.s3a.path.style.access": str(path_style).lower(),
            "fs.s3a.endpoint.region": options.get("AWS_REGION", "us-east-1"),
            "fs.s3a.access.key": options.get("AWS_ACCESS_KEY_ID", ""),
            "fs.s3a.secret.key": options.get("AWS_SECRET_ACCESS_KEY", "")}
    if endpoint:
        conf |= {"fs.s3a.endpoint": endpoint,
                 "fs.s3a.connection.ssl.enabled": str(endpoint.startswith("https://")).lower()}
    return {f"spark.hadoop.{key}": value for key, value in conf.items()}


def spark_uri(path: TablePath) -> str:
    """The table's location as Spark names it (`s3a://` for S3: Hadoop's S3A filesystem)."""
    return str(path).replace("s3://", "s3a://", 1) if isinstance(path, ObjectPath) else str(path)


def spark_session(app: str = "streamgate", root: TablePath | None = None) -> Any:
    """A local Spark session that reads and writes Delta tables (under `root` on object storage too)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise RuntimeError("pyspark is not installed: `uv sync --group spark` (make setup does it)") from exc
    # S3A always: one JVM serves every session of a process, and jars join its classpath only at start
    builder = (SparkSession.builder.master("local[1]").appName(app)
               .config("spark.jars", ",".join(delta_jars() + s3a_jars()))
               .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
               .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
               .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC"))
    for key, value in (s3a_conf(root) if root is not None else {}).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
