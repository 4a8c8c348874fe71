"""Read the tables with Apache Spark and Delta Lake, the reference reader.

pyspark comes from PyPI (the `spark` dependency group, installed by `make setup`); the delta-spark jars
from Maven Central through `ops/spark/pom.xml` (Spark's own `--packages` resolver does not go through
the proxy Maven is configured for here). Spark 4.0 with Delta 4.0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamgate.maven import maven_classpath

POM = Path(__file__).resolve().parents[1] / "ops" / "spark" / "pom.xml"
CACHE_DIR = Path.home() / ".cache" / "streamgate"


def delta_jars() -> list[str]:
    """delta-spark and delta-storage (Scala and ANTLR come with pyspark)."""
    classpath = maven_classpath(POM, "delta-spark", CACHE_DIR)
    return [jar for jar in classpath.split(":") if "/io/delta/" in jar]


def spark_session(app: str = "streamgate") -> Any:
    """A local Spark session that reads and writes Delta tables."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise RuntimeError("pyspark is not installed: `uv sync --group spark` (make setup does it)") from exc
    return (SparkSession.builder.master("local[1]").appName(app)
            .config("spark.jars", ",".join(delta_jars()))
            .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
            .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
            .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC")
            .getOrCreate())
