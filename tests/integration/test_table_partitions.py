"""`replace_partitions` on real Delta tables, on the local disk and in the S3 server's bucket: files written
by pyarrow, committed by deltalake in one version that replaces exactly the partitions named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from shared.tables.delta import open_table
from shared.tables.partitions import replace_partitions
from tests.conftest import Lake

SCHEMA = pa.schema([("id", pa.string()), ("date", pa.string()), ("at", pa.timestamp("us", tz="UTC")),
                    ("cost", pa.int64())])
START = datetime(2026, 12, 1, 10, 0, 0, 123, tzinfo=UTC)  # microseconds: a statistic must keep them


def _rows(date: str, ids: list[str]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({
        "id": ids, "date": [date] * len(ids),
        "at": [START + timedelta(milliseconds=7 * i) for i in range(len(ids))],
        "cost": [None if i % 3 == 0 else i for i in range(len(ids))]}, schema=SCHEMA)


def _ids(path: object, date: str | None = None) -> list[str]:
    table = open_table(path).to_pyarrow_table()  # type: ignore[arg-type]
    if date is not None:
        table = table.filter(pc.equal(table["date"], date))
    return sorted(table["id"].to_pylist())


def test_partitions_are_replaced_in_one_commit_and_the_rest_kept(lake: Lake) -> None:
    settings, _ = lake
    path = settings.table_root() / "silver" / "replaced"
    first = [f"a{i}" for i in range(500)]
    # created by the first call; batches of one date may come apart (the slices of the silver facts)
    assert replace_partitions(path, [_rows("2026-12-01", first[:200]), _rows("2026-12-02", ["b1", "b2"]),
                                     _rows("2026-12-01", first[200:])], SCHEMA, "date", None) == 502
    assert _ids(path, "2026-12-01") == sorted(first) and _ids(path, "2026-12-02") == ["b1", "b2"]
    version = open_table(path).version()

    assert replace_partitions(path, [_rows("2026-12-02", ["c1"]), _rows("2026-12-03", ["d1"])], SCHEMA,
                              "date", ["2026-12-02", "2026-12-03"]) == 2
    table = open_table(path)
    assert table.version() == version + 1, "one commit"
    assert _ids(path, "2026-12-01") == sorted(first), "a partition not named is untouched"
    assert _ids(path, "2026-12-02") == ["c1"] and _ids(path, "2026-12-03") == ["d1"]

    # no rows for a named date: its partition is emptied
    replace_partitions(path, [], SCHEMA, "date", ["2026-12-03"])
    assert _ids(path, "2026-12-03") == [] and len(_ids(path)) == 501

    # the log's statistics: row and null counts, and minima/maxima a filter may skip files by
    adds = pa.table(open_table(path).get_add_actions(flatten=True))
    assert sum(adds["num_records"].to_pylist()) == 501
    assert sum(adds["null_count.cost"].to_pylist()) == 67 + 100 + 1  # every third row of each batch
    last = START + timedelta(milliseconds=7 * 299)  # the latest row: a499, the longer batch's last
    at_last = open_table(path).to_pyarrow_dataset().to_table(
        filter=ds.field("at") >= pa.scalar(last, pa.timestamp("us", tz="UTC")))
    assert at_last["id"].to_pylist() == ["a499"], "a file's maximum is its last row, not below it"


def test_rows_with_other_columns_are_refused(lake: Lake) -> None:
    settings, _ = lake
    path = settings.table_root() / "silver" / "refused"
    replace_partitions(path, [_rows("2026-12-01", ["a"])], SCHEMA, "date", None)
    other = SCHEMA.append(pa.field("extra", pa.int64()))
    with pytest.raises(ValueError, match="extra"):
        replace_partitions(path, [], other, "date", ["2026-12-01"])
    assert _ids(path) == ["a"]
