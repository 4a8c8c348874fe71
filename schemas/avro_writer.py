"""Avro binary writers generated once per schema: straight-line Python for one record type.

fastavro's writer walks the parsed schema for every record (type names looked up per field, a union
resolved per optional field), which took 37 µs for a 15-field Request on this machine. A writer
generated from the schema does the same work in the order the fields come and nothing else (9 µs). A
generated writer that meets a value it cannot write (a wrong type, a missing field) raises; the codec
then writes the record with fastavro, so errors and edge cases are fastavro's, byte for byte.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any

from schemas.avro_codegen import Emitter, UnsupportedSchemaError

Writer = Callable[[Mapping[str, Any]], bytes]

#: zigzag varints of 0..1023: string lengths, counts and small numbers, without arithmetic
_SMALL = tuple(bytes([(n << 1) & 0x7F | 0x80, (n << 1) >> 7]) if n >= 64 else bytes([n << 1])
               for n in range(1024))


def zigzag_long(n: int) -> bytes:
    """Avro's encoding of a long: zig-zag, then a little-endian base-128 varint."""
    if 0 <= n < 1024:
        return _SMALL[n]
    if not -(1 << 63) <= n < (1 << 63):
        raise OverflowError(f"{n} does not fit an Avro long")
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _int(n: int) -> bytes:
    if not -(1 << 31) <= n < (1 << 31):
        raise OverflowError(f"{n} does not fit an Avro int")
    return zigzag_long(n)


def _string(s: str) -> bytes:
    b = s.encode()
    return zigzag_long(len(b)) + b


def _bytes(b: bytes) -> bytes:
    return zigzag_long(len(b)) + b


def _boolean(v: bool) -> bytes:
    if v is True:
        return b"\x01"
    if v is False:
        return b"\x00"
    raise TypeError(f"{v!r} is not a boolean")


def _whole(v: Any) -> int:
    """A number for an int or long field as fastavro takes it (a float truncated, a bool as 0 or 1);
    anything else raises, and the codec asks fastavro."""
    if isinstance(v, (str, bytes)) or v is None:
        raise TypeError(f"{v!r} is not a number")
    return int(v)


_HELPERS = {"_long": zigzag_long, "_int": _int, "_string": _string, "_bytes": _bytes, "_boolean": _boolean,
            "_float": struct.Struct("<f").pack, "_double": struct.Struct("<d").pack, "_whole": _whole}


class _WriterEmitter(Emitter):
    def value(self, schema: Any, expr: str, depth: int) -> None:
        """Append the encoding of `expr` (a local name) as `schema` to `out`."""
        schema, kind = self.resolve(schema)
        if kind == "union":
            null_at, other = self.nullable_branch(schema)
            self.line(depth, f"if {expr} is None:")
            self.line(depth + 1, f"out += {zigzag_long(null_at)!r}")
            self.line(depth, "else:")
            self.line(depth + 1, f"out += {zigzag_long(1 - null_at)!r}")
            self.value(other, expr, depth + 1)
        elif kind == "null":
            self.line(depth, f"if {expr} is not None: raise TypeError('not null')")
        elif kind in ("int", "long"):
            # a float or a bool is written as fastavro writes it (int() of it), not sent to fastavro
            self.line(depth, f"if {expr}.__class__ is not int: {expr} = _whole({expr})")
            self.line(depth, f"out += {'_int' if kind == 'int' else '_long'}({expr})")
        elif kind in ("boolean", "float", "double", "string", "bytes"):
            self.line(depth, f"out += _{kind}({expr})")
        elif kind == "record":
            self.record(schema, expr, depth)
        elif kind == "enum":
            table = self.var("enum")
            self.consts[table] = {s: zigzag_long(i) for i, s in enumerate(schema["symbols"])}
            self.line(depth, f"out += {table}[{expr}]")
        elif kind == "fixed":
            self.line(depth, f"if len({expr}) != {int(schema['size'])}: raise ValueError('fixed size')")
            self.line(depth, f"out += {expr}")
        elif kind in ("array", "map"):
            self.blocks(schema, kind, expr, depth)
        else:
            raise UnsupportedSchemaError(f"type {kind!r}")

    def blocks(self, schema: Mapping[str, Any], kind: str, expr: str, depth: int) -> None:
        """One block of every item (fastavro writes the same), then the empty block."""
        item, key = self.var("item"), self.var("key")
        self.line(depth, f"if {expr}:")
        self.line(depth + 1, f"out += _long(len({expr}))")
        if kind == "array":
            self.line(depth + 1, f"for {item} in {expr}:")
            self.value(schema["items"], item, depth + 2)
        else:
            self.line(depth + 1, f"for {key}, {item} in {expr}.items():")
            self.line(depth + 2, f"out += _string({key})")
            self.value(schema["values"], item, depth + 2)
        self.line(depth, "out += b'\\x00'")

    def record(self, schema: Mapping[str, Any], expr: str, depth: int) -> None:
        """Each field as fastavro takes it: the record's value, else the field's default, else None."""
        name = self.enter_record(schema)
        for field in schema["fields"]:
            local, key = self.var("f"), field["name"]
            if "default" in field:
                default = self.var("default")
                self.consts[default] = field["default"]
                self.line(depth, f"{local} = {expr}.get({key!r}, {default})")
            else:
                self.line(depth, f"{local} = {expr}.get({key!r})")
            self.value(field["type"], local, depth)
        self.open_records.discard(name)


def compile_writer(schema: Mapping[str, Any]) -> Writer | None:
    """A writer of `schema`'s records (a record schema, parsed or not), or None where fastavro must
    write it."""
    writer: Writer | None = _WriterEmitter.compile(schema, "write(record)", ["out = bytearray()"],
                                                   ["return bytes(out)"], _HELPERS)
    return writer
