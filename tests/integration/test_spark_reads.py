"""Apache Spark with Delta Lake (the reference reader) reads the tables streamgate writes."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer

from lakehouse.gold import gold_root, rebuild_all
from lakehouse.sink import BronzeSink, bronze_root
from lakehouse.spark import spark_session, spark_uri
from lakehouse.tables import BRONZE
from schemas import make_codec
from shared.traffic.telemetry import telemetry_events
from streamgate.kafka.clients import producer_config
from tests.conftest import Lake

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _utc_day() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


def test_spark_reads_bronze_and_gold_tables(lake: Lake, topics: dict[str, str]) -> None:
    """On the local disk, and in the S3 server's bucket through Hadoop's S3A filesystem."""
    settings, _ = lake
    events = list(telemetry_events(3_000, start_ms=int(time.time() * 1000) - 3 * 86_400_000,
                                   span_ms=3 * 86_400_000))
    codec = make_codec(topics["telemetry"], "Telemetry")
    producer = Producer(producer_config(settings, client_id="t", role="admin"))
    for e in events:
        producer.produce(topics["telemetry"], codec.encode(e), e["request_id"].encode())
    producer.flush(30)
    sink = BronzeSink(settings, instance="spark", tables=tuple(t for t in BRONZE if t.name == "telemetry"))
    landed_days = {_utc_day()}
    assert sink.run(idle_exit_s=3.0)["rows:telemetry"] == len(events)
    landed_days.add(_utc_day())  # a run across midnight lands on either day
    rebuild_all(settings)

    spark = spark_session("streamgate-test", settings.table_root())
    try:
        bronze = spark.read.format("delta").load(spark_uri(bronze_root(settings) / "telemetry"))
        assert bronze.count() == len(events)
        row = bronze.selectExpr("sum(cost_nanousd) as cost", "count(distinct event_id) as ids",
                                "max(size(tags)) as tags", "min(started_at) as first").collect()[0]
        assert row["cost"] == sum(e["cost_nanousd"] for e in events) and row["ids"] == len(events)
        gold = spark.read.format("delta").load(spark_uri(gold_root(settings) / "daily_cost"))
        assert gold.selectExpr("sum(cost_nanousd)").collect()[0][0] == row["cost"]
        # partitioned by the day the records landed (bronze `date`), read back as a column
        days = {r["date"] for r in gold.select("date").distinct().collect()}
        assert days and days <= landed_days
    finally:
        spark.stop()
