"""Avro binary readers generated once per schema: the counterpart of `schemas.avro_writer`.

Only for a record written with the schema it is read with (no resolution between versions: fastavro
does that). A generated reader that meets bytes it does not expect (truncated, an unknown union branch,
invalid UTF-8, a negative length) raises; the codec then reads the value with fastavro, so every error
is fastavro's. Varints of one byte (small numbers, short strings) are read inline.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any

from schemas.avro_codegen import Emitter, UnsupportedSchemaError

#: (record, position after it) from the bytes and the position the record starts at
Reader = Callable[[bytes, int], tuple[dict[str, Any], int]]


def _varint(buf: bytes, pos: int, first: int) -> tuple[int, int]:
    """A zigzag varint of more than one byte whose first byte, `first`, was read from before `pos`."""
    z, shift = first & 0x7F, 7
    while True:
        b = buf[pos]
        pos += 1
        z |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")
    return (z >> 1) ^ -(z & 1), pos


def _boolean(b: int) -> bool:
    if b > 1:
        raise ValueError(f"boolean byte {b}")
    return b == 1


_HELPERS = {"_varint": _varint, "_boolean": _boolean, "_float": struct.Struct("<f").unpack_from,
            "_double": struct.Struct("<d").unpack_from}


class _ReaderEmitter(Emitter):
    def long(self, target: str, depth: int) -> None:
        """`target` = the next zigzag varint."""
        first = self.var("b")
        self.line(depth, f"{first} = buf[pos]")
        self.line(depth, "pos += 1")
        self.line(depth, f"if {first} < 128: {target} = ({first} >> 1) ^ -({first} & 1)")
        self.line(depth, f"else: {target}, pos = _varint(buf, pos, {first})")

    def sized(self, target: str, depth: int, decode: bool) -> None:
        size = self.var("n")
        self.long(size, depth)
        self.line(depth, f"if {size} < 0 or pos + {size} > end: raise ValueError('length')")
        self.line(depth, f"{target} = buf[pos:pos + {size}]{'.decode()' if decode else ''}")
        self.line(depth, f"pos += {size}")

    def value(self, schema: Any, target: str, depth: int) -> None:
        """`target` = the next value of `schema`."""
        schema, kind = self.resolve(schema)
        if kind == "union":
            null_at, other = self.nullable_branch(schema)
            # the branch index is one byte, 0 or 2 (zigzag of 0 and 1)
            self.line(depth, "branch = buf[pos]")
            self.line(depth, "pos += 1")
            self.line(depth, f"if branch == {2 * null_at}: {target} = None")
            self.line(depth, f"elif branch == {2 * (1 - null_at)}:")
            self.value(other, target, depth + 1)
            self.line(depth, "else: raise ValueError('union branch')")
        elif kind == "null":
            self.line(depth, f"{target} = None")
        elif kind == "boolean":
            self.line(depth, f"{target} = _boolean(buf[pos])")
            self.line(depth, "pos += 1")
        elif kind in ("int", "long"):
            self.long(target, depth)
        elif kind in ("float", "double"):
            width = 4 if kind == "float" else 8
            self.line(depth, f"if pos + {width} > end: raise ValueError('short')")
            self.line(depth, f"{target} = _{kind}(buf, pos)[0]")
            self.line(depth, f"pos += {width}")
        elif kind in ("string", "bytes"):
            self.sized(target, depth, decode=kind == "string")
        elif kind == "record":
            self.record(schema, target, depth)
        elif kind == "enum":
            symbols, index = self.var("symbols"), self.var("i")
            self.consts[symbols] = tuple(schema["symbols"])
            self.long(index, depth)
            self.line(depth, f"if {index} < 0: raise ValueError('enum')")
            self.line(depth, f"{target} = {symbols}[{index}]")
        elif kind == "fixed":
            size = int(schema["size"])
            self.line(depth, f"if pos + {size} > end: raise ValueError('short')")
            self.line(depth, f"{target} = buf[pos:pos + {size}]")
            self.line(depth, f"pos += {size}")
        elif kind in ("array", "map"):
            self.blocks(schema, kind, target, depth)
        else:
            raise UnsupportedSchemaError(f"type {kind!r}")

    def blocks(self, schema: Mapping[str, Any], kind: str, target: str, depth: int) -> None:
        count, item, key, skip = self.var("count"), self.var("item"), self.var("key"), self.var("skip")
        self.line(depth, f"{target} = []" if kind == "array" else f"{target} = {{}}")
        self.line(depth, "while True:")
        self.long(count, depth + 1)
        self.line(depth + 1, f"if {count} == 0: break")
        self.line(depth + 1, f"if {count} < 0:")  # a block that also says its size in bytes
        self.line(depth + 2, f"{count} = -{count}")
        self.long(skip, depth + 2)
        self.line(depth + 1, f"for _ in range({count}):")
        if kind == "array":
            self.value(schema["items"], item, depth + 2)
            self.line(depth + 2, f"{target}.append({item})")
        else:
            self.sized(key, depth + 2, decode=True)
            self.value(schema["values"], item, depth + 2)
            self.line(depth + 2, f"{target}[{key}] = {item}")

    def record(self, schema: Mapping[str, Any], target: str, depth: int) -> None:
        name = self.enter_record(schema)
        fields = []
        for field in schema["fields"]:
            local = self.var("f")
            self.value(field["type"], local, depth)
            fields.append(f"{field['name']!r}: {local}")
        self.line(depth, f"{target} = {{{', '.join(fields)}}}")
        self.open_records.discard(name)


def compile_reader(schema: Mapping[str, Any]) -> Reader | None:
    """A reader of `schema`'s records written with that same schema, or None where fastavro must read."""
    reader: Reader | None = _ReaderEmitter.compile(schema, "read(buf, pos)", ["end = len(buf)"],
                                                   ["return record, pos"], _HELPERS)
    return reader
