"""Replace a Delta table's partitions with a stream of rows, in one commit, in bounded memory.

pyarrow writes the Parquet files from the stream (a batch at a time, straight into the table's location)
and deltalake only commits them: `write_deltalake` held its whole input before writing (~0.35 KB a row:
1.9 GB for the 4.2 million silver facts of one day), whatever the row group and file sizes. Files
written by a run that dies before its commit are in no version of the table (readers never see them);
`vacuum` removes them.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.dataset as ds
from deltalake.transaction import AddAction, RemoveAction

from shared.tables.delta import open_or_none, open_table, write_table
from streamgate.storage import ObjectPath, TablePath

#: Rows per Parquet row group and per file: a file's rows are what its writer holds at most.
ROWS_PER_GROUP = 131_072
ROWS_PER_FILE = 1_048_576
#: How pyarrow's hive partitioning names a null partition value.
_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def replace_partitions(path: TablePath, batches: Iterable[pa.RecordBatch], schema: pa.Schema, column: str,
                       values: list[str] | None) -> int:
    """Make the partitions `values` of `column` (every partition when None) hold exactly `batches`, in
    one commit; a table that does not exist yet is created partitioned by `column`. Returns rows."""
    table = open_or_none(path)
    if table is None:
        write_table(path, schema.empty_table(), partition_by=[column])
        table = open_table(path)
    target = pa.schema(table.schema().to_arrow())
    if sorted(target.names) != sorted(schema.names):
        raise ValueError(f"{path}: the rows' columns {sorted(schema.names)} are not the table's "
                         f"{sorted(target.names)}")
    written: list[Any] = []
    name = f"part-{uuid.uuid4().hex}-{{i}}.parquet"
    ds.write_dataset(
        _cast(batches, target), schema=target, format="parquet", filesystem=_filesystem(path),
        base_dir=_base(path), partitioning=ds.partitioning(pa.schema([target.field(column)]), flavor="hive"),
        basename_template=name, existing_data_behavior="overwrite_or_ignore",
        max_rows_per_group=ROWS_PER_GROUP, max_rows_per_file=ROWS_PER_FILE, file_visitor=written.append)
    base = _base(path).rstrip("/") + "/"
    actions: list[AddAction | RemoveAction] = [_add(f, base, column, target) for f in written]
    filters = None if values is None else [(column, "in", values)]
    table.create_write_transaction(actions, mode="overwrite", schema=table.schema(), partition_by=[column],
                                   partition_filters=filters)
    return sum(f.metadata.num_rows for f in written)


def _cast(batches: Iterable[pa.RecordBatch], target: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Each batch in the table's column order and types (Delta keeps timestamps in microseconds)."""
    for batch in batches:
        yield pa.RecordBatch.from_arrays([batch.column(f.name).cast(f.type) for f in target], schema=target)


def _filesystem(path: TablePath) -> Any:
    if isinstance(path, ObjectPath):
        return path.filesystem()
    from pyarrow import fs

    return fs.LocalFileSystem()


def _base(path: TablePath) -> str:
    return f"{path.bucket}/{path.key}" if isinstance(path, ObjectPath) else str(path)


def _add(written: Any, base: str, column: str, target: pa.Schema) -> AddAction:
    """The log's record of one file pyarrow wrote: where, its partition, its size and row counts."""
    relative = written.path.removeprefix(base)
    directory = relative.split("/", 1)[0]
    value: str | None = unquote(directory.partition("=")[2])
    if value == _HIVE_NULL:
        value = None
    meta = written.metadata
    nulls = {name: 0 for name in target.names if name != column}
    low: dict[str, Any] = {}
    high: dict[str, Any] = {}
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            chunk = group.column(c)
            name, st = chunk.path_in_schema, chunk.statistics
            if name not in nulls or st is None:
                continue
            nulls[name] += st.null_count if st.has_null_count else 0
            if st.has_min_max and _ranged(target.field(name).type) and _finite(st.min, st.max):
                low[name] = st.min if name not in low else min(low[name], st.min)
                high[name] = st.max if name not in high else max(high[name], st.max)
    stats = json.dumps({"numRecords": meta.num_rows, "nullCount": nulls,
                        "minValues": {k: _json(v) for k, v in low.items()},
                        "maxValues": {k: _json(v) for k, v in high.items()}})
    return AddAction(relative, written.size, {column: value}, int(time.time() * 1000), True, stats)


def _ranged(kind: pa.DataType) -> bool:
    """Types whose Parquet min/max are exact (a string's may be truncated): the skipping statistics."""
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_timestamp(kind))


def _finite(*values: Any) -> bool:
    """JSON has no NaN or infinity: a float column holding one gets no range."""
    return all(math.isfinite(v) for v in values if isinstance(v, float))


def _json(value: Any) -> Any:
    """A statistic as Delta writers log it: timestamps in ISO 8601, UTC, to the millisecond (readers
    widen a maximum by the millisecond it may have lost; the partitions test checks a filter at the
    last row's microsecond still finds it)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return value
