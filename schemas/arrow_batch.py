"""Decode many single-object Avro values straight into one Arrow table, in Rust.

A batch of single-object values written with the same schema is an Avro object-container file in all
but name: the same record bodies, one after another, behind a header that names the schema. So the
bodies are framed as one container block and read by DataFusion's Avro reader, which builds Arrow
columns without a Python dict per record (about 12x fastavro's per-record decode on telemetry here).

Only what the fast path can prove it handles goes through it: values whose header names the event
type's *current* schema. Everything else (an older writer schema that needs Avro resolution, a bad
header, a batch the reader rejects) is decoded one by one with the topic codec, so a bad record costs
its own place, never the batch, and the caller gets the same typed error the codec raises.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from schemas.catalog import SchemaCatalog, default_catalog
from schemas.codec import _HEADER, SINGLE_OBJECT_MAGIC, TopicCodec
from schemas.errors import EventDecodeError

_SYNC = b"streamgate-sync!"  # any 16 bytes: it only has to match between header and block
_TMP = "/dev/shm" if os.path.isdir("/dev/shm") else None


def _long(n: int) -> bytes:
    """Avro's zig-zag varint."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def container_header(schema: dict[str, Any]) -> bytes:
    """An object-container header for `schema` with no compression."""
    meta = {b"avro.schema": json.dumps(schema).encode(), b"avro.codec": b"null"}
    parts = [b"Obj\x01", _long(len(meta))]
    for key, value in meta.items():
        parts += [_long(len(key)), key, _long(len(value)), value]
    parts += [_long(0), _SYNC]
    return b"".join(parts)


@dataclass
class ArrowBatch:
    """The decoded rows (`table` row i came from input position `index[i]`) and the records that did not."""

    table: pa.Table
    index: list[int]
    errors: list[tuple[int, EventDecodeError]] = field(default_factory=list)


class ArrowBatchDecoder:
    """Single-object values of one topic -> an Arrow table in `schema` (the table's column types)."""

    def __init__(self, codec: TopicCodec, schema: pa.Schema, catalog: SchemaCatalog | None = None) -> None:
        import datafusion  # imported here: only the batch path needs the engine

        self.codec, self.schema = codec, schema
        current = (catalog or default_catalog()).current(codec.event_type)
        self._prefix = SINGLE_OBJECT_MAGIC + current.fingerprint
        self._header = container_header(current.source)
        self._ctx = datafusion.SessionContext()

    def decode(self, values: Sequence[bytes]) -> ArrowBatch:
        fast = [i for i, v in enumerate(values) if v[:_HEADER] == self._prefix]
        fast_table = self._read_block([values[i] for i in fast]) if fast else None
        if fast_table is None:  # nothing for the fast path, or the reader refused the block
            return self._one_by_one(values, range(len(values)))
        if len(fast) == len(values):
            return ArrowBatch(fast_table, fast)
        rest = self._one_by_one(values, sorted(set(range(len(values))) - set(fast)))
        return ArrowBatch(pa.concat_tables([fast_table, rest.table]), fast + rest.index, rest.errors)

    def _read_block(self, values: list[bytes]) -> pa.Table | None:
        body = b"".join(v[_HEADER:] for v in values)
        block = b"".join((self._header, _long(len(values)), _long(len(body)), body, _SYNC))
        fd, name = tempfile.mkstemp(suffix=".avro", dir=_TMP)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(block)
            table = self._ctx.read_avro(name).to_arrow_table()
        except Exception:  # a malformed body somewhere in the block: the slow path finds which
            return None
        finally:
            Path(name).unlink(missing_ok=True)
        if table.num_rows != len(values):
            return None
        return table.select(self.schema.names).cast(self.schema)

    def _one_by_one(self, values: Sequence[bytes], positions: Sequence[int]) -> ArrowBatch:
        rows: list[dict[str, Any]] = []
        index: list[int] = []
        errors: list[tuple[int, EventDecodeError]] = []
        for i in positions:
            try:
                rows.append(self.codec.decode(values[i]))
                index.append(i)
            except EventDecodeError as err:
                errors.append((i, err))
        return ArrowBatch(pa.Table.from_pylist(rows, schema=self.schema), index, errors)
