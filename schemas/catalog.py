"""Every Avro schema in the repository, current and historical, indexed by name and fingerprint.

Single-object encoding identifies a writer schema by the CRC-64-AVRO fingerprint of its Parsing
Canonical Form, so a reader must know every version that was ever written: the history folder is part of
the contract, not an archive.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint as _fingerprint
from fastavro.schema import to_parsing_canonical_form

AVRO_DIR = Path(__file__).resolve().parent / "avro"
HISTORY_DIR = AVRO_DIR / "history"

Schema = dict[str, Any]


@dataclass(frozen=True)
class SchemaVersion:
    name: str
    version: int
    #: The schema as written in the .avsc file (with logical types), for registries and table mapping.
    source: Schema
    #: Parsed for the codecs, with logical types removed so timestamps stay int millis on the hot path.
    parsed: Schema
    fingerprint: bytes


def snake_name(record_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", record_name).lower()


def strip_logical_types(schema: Any) -> Any:
    """A copy without `logicalType`; it is not part of the canonical form, so fingerprints are unchanged."""
    if isinstance(schema, dict):
        return {k: strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [strip_logical_types(s) for s in schema]
    return schema


def schema_fingerprint(schema: Schema) -> bytes:
    """CRC-64-AVRO of the Parsing Canonical Form, as the 8 little-endian bytes single-object headers carry."""
    canonical = to_parsing_canonical_form(parse_schema(copy.deepcopy(schema)))
    return bytes.fromhex(_fingerprint(canonical, "CRC-64-AVRO"))


def _load(path: Path, name: str, version: int) -> SchemaVersion:
    source = json.loads(path.read_text())
    if source.get("name") != name:
        raise ValueError(f"{path}: record name {source.get('name')!r} != expected {name!r}")
    # parsed once, with fastavro's "already parsed" mark: without it every encode and decode parses the
    # schema again (measured on Telemetry: encode 90 -> 14 us, decode 41 -> 14 us)
    parsed: Schema = parse_schema(strip_logical_types(source))  # type: ignore[assignment]
    return SchemaVersion(name, version, source, parsed, schema_fingerprint(source))


class SchemaCatalog:
    """Current and historical schemas; built once per process (see :func:`default_catalog`)."""

    def __init__(self, root: Path = AVRO_DIR) -> None:
        self._versions: dict[str, list[SchemaVersion]] = {}
        self._by_fp: dict[bytes, SchemaVersion] = {}
        for current_path in sorted(root.glob("*.avsc")):
            name = json.loads(current_path.read_text())["name"]
            versions = [
                _load(p, name, int(p.stem.lstrip("v")))
                for p in sorted((root / "history" / current_path.stem).glob("v*.avsc"))
            ]
            current = json.loads(current_path.read_text())
            version = int(current.get("streamgate_version", len(versions) + 1))
            versions = [v for v in versions if v.version != version]
            versions.append(_load(current_path, name, version))
            self._versions[name] = versions
            for v in versions:
                self._by_fp[v.fingerprint] = v

    def names(self) -> list[str]:
        return sorted(self._versions)

    def current(self, name: str) -> SchemaVersion:
        try:
            return self._versions[name][-1]
        except KeyError:
            raise KeyError(f"unknown event type {name!r}; known: {', '.join(self.names())}") from None

    def versions(self, name: str) -> list[SchemaVersion]:
        """All versions of an event type, oldest first; the last is current."""
        self.current(name)
        return list(self._versions[name])

    def by_fingerprint(self, fp: bytes) -> SchemaVersion | None:
        return self._by_fp.get(fp)


@cache
def default_catalog() -> SchemaCatalog:
    return SchemaCatalog()
