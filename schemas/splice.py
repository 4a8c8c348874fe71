"""A RoutedRequest's bytes spliced from the Request bytes it extends: the request path's costliest encode.

A RoutedRequest begins with a Request's fields but its last (the caller, the conversation, parameters,
tags: nearly all of its bytes), and Avro's binary encoding of a record is its fields' encodings back to
back. So the routed body is the request body without its trailing `created_at`, then the routing
fields, then `created_at` and `routed_at`. The routing fields repeat (one route decision serves many
requests) and are encoded once per distinct value. Encoding a routed 1 KB request with fastavro cost
~17 us; the splice ~2 us.

The layouts are compared at start-up (any schema change that breaks the correspondence disables the
splice), and each request's bytes must be in the current Request schema and end with its `created_at`;
otherwise :meth:`RoutedSplicer.splice` returns None and the caller encodes normally.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Mapping
from typing import Any

from fastavro import parse_schema, schemaless_writer

from schemas.avro_writer import zigzag_long
from schemas.catalog import SchemaCatalog, default_catalog

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
_TIMES = ("created_at", "routed_at")
_CACHE_LIMIT = 4096


def _shape(schema: Any) -> str:
    """A field type without docs and defaults: what decides its binary encoding."""
    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            kept = {k: strip(v) for k, v in node.items() if k not in ("doc", "default", "logicalType")}
            return kept["type"] if list(kept) == ["type"] and isinstance(kept["type"], str) else kept
        if isinstance(node, list):
            return [strip(n) for n in node]
        return node
    return json.dumps(strip(schema), sort_keys=True)


class RoutedSplicer:
    """Request bytes + route fields -> RoutedRequest bytes (Avro single-object encoding)."""

    def __init__(self, catalog: SchemaCatalog | None = None) -> None:
        catalog = catalog or default_catalog()
        request, routed = catalog.current("Request"), catalog.current("RoutedRequest")
        head, tail = request.source["fields"], routed.source["fields"]
        shared = len(head) - 1
        self.enabled = (
            len(tail) > shared + 2
            and [_shape(f["type"]) for f in head[:shared]] == [_shape(f["type"]) for f in tail[:shared]]
            and (head[-1]["name"], _shape(head[-1]["type"])) == ("created_at", '"long"')
            and [(f["name"], _shape(f["type"])) for f in tail[-2:]] == [(t, '"long"') for t in _TIMES])
        self._request_header = SINGLE_OBJECT_MAGIC + request.fingerprint
        self._routed_header = SINGLE_OBJECT_MAGIC + routed.fingerprint
        middle = copy.deepcopy(tail[shared:-2])
        self._middle_names = [f["name"] for f in middle]
        self._middle = parse_schema({"type": "record", "name": "RoutedMiddle",
                                     "namespace": routed.source.get("namespace"), "fields": middle})
        self._encoded: dict[str, bytes] = {}

    def splice(self, request_value: bytes, routed: Mapping[str, Any]) -> bytes | None:
        """The encoded `routed`, which must carry the request's own first fields, or None when
        `request_value` is not a current-schema Request ending in `routed['created_at']`."""
        if not self.enabled or not request_value.startswith(self._request_header):
            return None
        created = zigzag_long(routed["created_at"])
        if not request_value.endswith(created):
            return None
        return b"".join((self._routed_header, request_value[len(self._request_header):-len(created)],
                         self._middle_bytes(routed), created, zigzag_long(routed["routed_at"])))

    def _middle_bytes(self, routed: Mapping[str, Any]) -> bytes:
        key = repr([routed[name] for name in self._middle_names])  # plain data: repr is its identity
        found = self._encoded.get(key)
        if found is None:
            out = io.BytesIO()
            schemaless_writer(out, self._middle, {name: routed[name] for name in self._middle_names})
            if len(self._encoded) >= _CACHE_LIMIT:
                self._encoded.clear()
            found = self._encoded[key] = out.getvalue()
        return found



def _read_long(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, next position) of the Avro long at `pos`."""
    byte = buf[pos]
    if byte < 0x80:  # the common case here: a length or union branch below 64
        return (byte >> 1) ^ -(byte & 1), pos + 1
    shift = n = 0
    while True:
        byte = buf[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (n >> 1) ^ -(n & 1), pos
        shift += 7


class StringFieldSplicer:
    """Request bytes with one leading string field replaced (authentication replaces `api_key_id`, the
    client's key hash, with the key's public id): ~2 us instead of ~17 us to encode the request again.

    Only the fields before it are walked (strings and nullable strings); a schema where that prefix has
    another shape disables the splice, and :meth:`replace` returns None for bytes not in the current
    schema, so the caller encodes normally.
    """

    def __init__(self, event_type: str, field: str, catalog: SchemaCatalog | None = None) -> None:
        schema = (catalog or default_catalog()).current(event_type)
        fields = schema.source["fields"]
        names = [f["name"] for f in fields]
        self._header = SINGLE_OBJECT_MAGIC + schema.fingerprint
        self._prefix: list[bool] = []  # True: a ["null", "string"] union; False: a string
        shapes = {'"string"': False, '["null", "string"]': True}
        self.enabled = field in names and _shape(fields[names.index(field)]["type"]) == '"string"'
        for f in fields[:names.index(field)] if self.enabled else []:
            shape = _shape(f["type"])
            if shape not in shapes:
                self.enabled = False
                break
            self._prefix.append(shapes[shape])

    def replace(self, value: bytes, new: str) -> bytes | None:
        if not self.enabled or not value.startswith(self._header):
            return None
        try:
            pos = len(self._header)
            for nullable in self._prefix:
                if nullable:
                    branch, pos = _read_long(value, pos)
                    if branch == 0:
                        continue
                length, pos = _read_long(value, pos)
                pos += length
            length, end = _read_long(value, pos)
        except IndexError:
            return None
        encoded = new.encode()
        return b"".join((value[:pos], zigzag_long(len(encoded)), encoded, value[end + length:]))
