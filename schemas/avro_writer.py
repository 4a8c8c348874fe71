"""Avro binary writers generated once per schema: straight-line Python for one record type.

fastavro's writer walks the parsed schema for every record (type names looked up per field, a union
resolved per optional field), which took 37 µs for a 15-field Request on this machine. A writer
generated from the schema does the same work in the order the fields come and nothing else (a third of
that). It covers what the repository's schemas use: records, primitives, enums, fixed, arrays, maps and
unions of null with one other type. For anything else `compile_writer` returns None and the codec keeps
fastavro. A generated writer that meets a value it cannot write (a wrong type, a missing field) raises;
the codec then writes the record with fastavro, so errors and edge cases are fastavro's, byte for byte.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any

Writer = Callable[[Mapping[str, Any]], bytes]

_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
#: zigzag varints of 0..1023: string lengths, counts and small numbers, without arithmetic
_SMALL = tuple(bytes([(n << 1) & 0x7F | 0x80, (n << 1) >> 7]) if n >= 64 else bytes([n << 1])
               for n in range(1024))


class UnsupportedSchemaError(Exception):
    """A schema construct the generator does not write (the codec keeps fastavro for it)."""


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


_long = zigzag_long


def _int(n: int) -> bytes:
    if not -(1 << 31) <= n < (1 << 31):
        raise OverflowError(f"{n} does not fit an Avro int")
    return _long(n)


def _string(s: str) -> bytes:
    b = s.encode()
    return _long(len(b)) + b


def _bytes(b: bytes) -> bytes:
    return _long(len(b)) + b


def _boolean(v: bool) -> bytes:
    if v is True:
        return b"\x01"
    if v is False:
        return b"\x00"
    raise TypeError(f"{v!r} is not a boolean")


_FLOAT = struct.Struct("<f").pack
_DOUBLE = struct.Struct("<d").pack
_GLOBALS = {"_long": _long, "_int": _int, "_string": _string, "_bytes": _bytes, "_boolean": _boolean,
            "_float": _FLOAT, "_double": _DOUBLE, "_exact_int": lambda v: v.__class__ is int}


class _Emitter:
    def __init__(self, named: dict[str, Any]) -> None:
        self.lines: list[str] = []
        self.named = named
        self.counter = 0
        self.consts: dict[str, Any] = {}
        self.open_records: set[str] = set()  # a record inside itself would generate forever

    def var(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def line(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def value(self, schema: Any, expr: str, depth: int) -> None:
        """Append the encoding of `expr` (a local name) as `schema` to `out`."""
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            schema = self.named.get(schema) or _raise(f"unknown named type {schema}")
        if isinstance(schema, list):
            return self.union(schema, expr, depth)
        kind = schema if isinstance(schema, str) else schema["type"]
        if isinstance(kind, (dict, list)):
            return self.value(kind, expr, depth)
        if isinstance(schema, dict) and kind in _PRIMITIVES and len(schema) > 1 and \
                set(schema) - {"type", "__fastavro_parsed", "__named_schemas"}:
            # a logical type: fastavro's conversions apply
            raise UnsupportedSchemaError(f"annotated primitive {schema}")
        if kind == "null":
            self.line(depth, f"if {expr} is not None: raise TypeError('not null')")
        elif kind == "boolean":
            self.line(depth, f"out += _boolean({expr})")
        elif kind in ("int", "long"):
            # fastavro writes what int() accepts from a real int; anything else goes to fastavro
            self.line(depth, f"if not _exact_int({expr}): raise TypeError('not an int')")
            self.line(depth, f"out += {'_int' if kind == 'int' else '_long'}({expr})")
        elif kind == "float":
            self.line(depth, f"out += _float({expr})")
        elif kind == "double":
            self.line(depth, f"out += _double({expr})")
        elif kind == "string":
            self.line(depth, f"out += _string({expr})")
        elif kind == "bytes":
            self.line(depth, f"out += _bytes({expr})")
        elif kind == "record":
            self.record(schema, expr, depth)
        elif kind == "enum":
            table = self.var("enum")
            self.consts[table] = {s: _long(i) for i, s in enumerate(schema["symbols"])}
            self.line(depth, f"out += {table}[{expr}]")
        elif kind == "fixed":
            size = int(schema["size"])
            self.line(depth, f"if len({expr}) != {size}: raise ValueError('fixed size')")
            self.line(depth, f"out += {expr}")
        elif kind == "array":
            item = self.var("item")
            self.line(depth, f"if {expr}:")
            self.line(depth + 1, f"out += _long(len({expr}))")
            self.line(depth + 1, f"for {item} in {expr}:")
            self.value(schema["items"], item, depth + 2)
            self.line(depth, "out += b'\\x00'")
        elif kind == "map":
            key, val = self.var("key"), self.var("val")
            self.line(depth, f"if {expr}:")
            self.line(depth + 1, f"out += _long(len({expr}))")
            self.line(depth + 1, f"for {key}, {val} in {expr}.items():")
            self.line(depth + 2, f"out += _string({key})")
            self.value(schema["values"], val, depth + 2)
            self.line(depth, "out += b'\\x00'")
        else:
            raise UnsupportedSchemaError(f"type {kind!r}")
        return None

    def union(self, branches: list[Any], expr: str, depth: int) -> None:
        others = [b for b in branches if b != "null"]
        if len(others) != 1 or len(branches) != 2:
            raise UnsupportedSchemaError(f"union {branches}")  # fastavro picks a branch by the value's type
        null_at = branches.index("null")
        self.line(depth, f"if {expr} is None:")
        self.line(depth + 1, f"out += {_long(null_at)!r}")
        self.line(depth, "else:")
        self.line(depth + 1, f"out += {_long(1 - null_at)!r}")
        self.value(others[0], expr, depth + 1)

    def record(self, schema: Mapping[str, Any], expr: str, depth: int) -> None:
        name = str(schema.get("name"))
        if name in self.open_records:
            raise UnsupportedSchemaError(f"recursive record {name}")
        self.open_records.add(name)
        for field in schema["fields"]:
            local = self.var("f")
            key = field["name"]
            if "default" in field:
                default = self.var("default")
                self.consts[default] = field["default"]
                self.line(depth, f"{local} = {expr}.get({key!r}, {default})")
            else:
                self.line(depth, f"{local} = {expr}.get({key!r})")
            self.value(field["type"], local, depth)
        self.open_records.discard(name)


def _raise(message: str) -> Any:
    raise UnsupportedSchemaError(message)


def named_types(schema: Any, into: dict[str, Any]) -> dict[str, Any]:
    """Every named type (record, enum, fixed) by full and short name, so references resolve."""
    if isinstance(schema, list):
        for branch in schema:
            named_types(branch, into)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "error", "enum", "fixed") and "name" in schema:
            into[schema["name"]] = schema
            into.setdefault(schema["name"].rsplit(".", 1)[-1], schema)
        for field in schema.get("fields", ()):
            named_types(field["type"], into)
        for key in ("items", "values"):
            if key in schema:
                named_types(schema[key], into)
        if isinstance(kind, (dict, list)):
            named_types(kind, into)
    return into


def compile_writer(schema: Mapping[str, Any]) -> Writer | None:
    """A writer of `schema`'s records (a record schema, parsed or not), or None where fastavro must
    write it."""
    if schema.get("type") != "record":
        return None
    emitter = _Emitter(named_types(schema, {}))
    try:
        emitter.record(schema, "record", 1)
    except UnsupportedSchemaError:
        return None
    source = "\n".join(["def write(record):", "    out = bytearray()", *emitter.lines,
                        "    return bytes(out)"])
    namespace: dict[str, Any] = dict(_GLOBALS) | emitter.consts
    exec(compile(source, f"<avro writer {schema.get('name')}>", "exec"), namespace)
    writer: Writer = namespace["write"]
    return writer
