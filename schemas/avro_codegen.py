"""What the generated Avro writer and reader share: resolving a schema's types, emitting indented lines,
and compiling them into one function.

Both cover records, primitives, enums, fixed, arrays, maps and unions of null with one other type;
anything else (and a logical type, whose conversions are fastavro's) raises UnsupportedSchemaError
while generating, and the codec keeps fastavro for that schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_SCHEMA_MARKS = {"type", "__fastavro_parsed", "__named_schemas"}


class UnsupportedSchemaError(Exception):
    """A schema construct the generators do not handle (the codec keeps fastavro for it)."""


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


class Emitter:
    """Lines of one generated function, the constants they name, and the schema's named types."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.lines: list[str] = []
        self.named = named_types(schema, {})
        self.counter = 0
        self.consts: dict[str, Any] = {}
        self.open_records: set[str] = set()  # a record inside itself would generate forever

    def var(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def line(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def resolve(self, schema: Any) -> tuple[Any, Any]:
        """(the schema, its kind) with names looked up and nested type declarations unwrapped; a union's
        kind is "union"."""
        while True:
            if isinstance(schema, str) and schema not in PRIMITIVES:
                if schema not in self.named:
                    raise UnsupportedSchemaError(f"unknown named type {schema}")
                schema = self.named[schema]
            if isinstance(schema, list):
                return schema, "union"
            kind = schema if isinstance(schema, str) else schema["type"]
            if not isinstance(kind, (dict, list)):
                break
            schema = kind
        if isinstance(schema, dict) and kind in PRIMITIVES and set(schema) - _SCHEMA_MARKS:
            raise UnsupportedSchemaError(f"annotated primitive {schema}")
        return schema, kind

    @staticmethod
    def nullable_branch(branches: list[Any]) -> tuple[int, Any]:
        """(where null is, the other type) of a union of null and one type."""
        others = [b for b in branches if b != "null"]
        if len(others) != 1 or len(branches) != 2:
            raise UnsupportedSchemaError(f"union {branches}")  # fastavro picks a branch by the value
        return branches.index("null"), others[0]

    def enter_record(self, schema: Mapping[str, Any]) -> str:
        name = str(schema.get("name"))
        if name in self.open_records:
            raise UnsupportedSchemaError(f"recursive record {name}")
        self.open_records.add(name)
        return name

    def record(self, schema: Mapping[str, Any], name: str, depth: int) -> None:
        raise NotImplementedError

    @classmethod
    def compile(cls, schema: Mapping[str, Any], signature: str, head: list[str], tail: list[str],
                helpers: dict[str, Any]) -> Any:
        """`schema`'s record handled by `record` and compiled as `def <signature>:` between `head` and
        `tail` lines (the record is the local `record`), or None where fastavro must do it."""
        if schema.get("type") != "record":
            return None
        emitter = cls(schema)
        try:
            emitter.record(schema, "record", 1)
        except UnsupportedSchemaError:
            return None
        source = "\n".join([f"def {signature}:", *("    " + h for h in head), *emitter.lines,
                            *("    " + t for t in tail)])
        namespace: dict[str, Any] = dict(helpers) | emitter.consts
        function = signature.partition("(")[0]
        exec(compile(source, f"<avro {function} {schema.get('name')}>", "exec"), namespace)
        return namespace[function]
