"""Columnar features of stored requests: everything a request-path decision reads, as Arrow columns.

A decision (apps/backtest/decide.py) reads only these fields of a request: team, project, key, model,
region, the generation parameters access and validation check, tags and metadata (routing conditions),
prompt size (validation, token ceiling, conditions, budgets), the PII entity types found, and the text
itself only for deny patterns and blocked topics. Sizes count only through the thresholds the policies
compare them with (limits, routing conditions), so they are keyed by bucket between those thresholds
(exactly, when budgets count tokens per minute). Requests equal in all of them get the same decision,
so a backtest decides once per distinct combination (a *signature*) and maps the answer back to every
request with `take`, instead of calling the stage functions a million times.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shared.policy.config import GatewayPolicy

SEP = "\x1f"
PAIR = "\x1e"
#: load-balance draws per request: 1/256 resolution of a route's weights
DRAW_BUCKETS = 256


def _as_array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def map_text(column: pa.Array | pa.ChunkedArray, drop_prefix: str | None = None) -> pa.Array:
    """Each map as one string of `key=value` pairs in stored order (keys under `drop_prefix` left out)."""
    maps = _as_array(column)
    n = len(maps)
    offsets = maps.offsets.to_numpy()
    lengths = np.diff(offsets)
    base, end = int(offsets[0]), int(offsets[-1])  # a sliced map array still shows all its entries
    keys, items = maps.keys[base:end], maps.items[base:end]
    pairs = pc.binary_join_element_wise(keys, pc.fill_null(items, ""), "=")
    parents = np.repeat(np.arange(n), lengths)
    if drop_prefix is not None and len(keys):
        kept = pc.invert(pc.starts_with(keys, drop_prefix))
        pairs, parents = pairs.filter(kept), parents[kept.to_numpy(zero_copy_only=False)]
    new_offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(parents, minlength=n), out=new_offsets[1:])
    listed = pa.ListArray.from_arrays(pa.array(new_offsets), pairs)
    return pc.binary_join(listed, PAIR)


def message_sizes(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prompt characters, the content check's token estimate, message count) per request: the sums
    `prompt_chars` and `check_content` compute, per message then per request."""
    messages = _as_array(column)
    n = len(messages)
    contents = pc.struct_field(pc.list_flatten(messages), "content")
    chars = pc.fill_null(pc.utf8_length(contents), 0).to_numpy().astype(np.int64)
    parents = pc.list_parent_indices(messages).to_numpy()
    prompt_chars = np.bincount(parents, weights=chars, minlength=n).astype(np.int64)
    tokens = np.bincount(parents, weights=(chars + 3) // 4, minlength=n).astype(np.int64)
    count = pc.fill_null(pc.list_value_length(messages), 0).to_numpy().astype(np.int64)
    return prompt_chars, tokens, count


def draw_buckets(request_ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A stable pseudo-random bucket in [0, DRAW_BUCKETS) per request id: its last two hex digits (a
    UUID's are uniform), or a CRC of the id when they are not hex. Computed per distinct tail only."""
    tails = pc.dictionary_encode(pc.utf8_slice_codeunits(_as_array(request_ids), -2, 2**31 - 1))

    def bucket(tail: str) -> int:
        try:
            return int(tail, 16) % DRAW_BUCKETS
        except ValueError:
            return zlib.crc32(tail.encode()) % DRAW_BUCKETS

    values = np.array([bucket(str(t)) for t in tails.dictionary.to_pylist()], dtype=np.int64)
    return values[tails.indices.to_numpy(zero_copy_only=False)] if len(values) else np.zeros(0, np.int64)


def param_columns(params: pa.Array | pa.ChunkedArray) -> dict[str, pa.Array]:
    """The generation parameters that validation and access read, as scalar string columns. Temperature
    and top_p only matter through their fixed valid ranges (streams/validate/rules.py), so they are keyed
    by validity, not value; max_tokens is kept exact (a policy cap, and budgets count it)."""
    p = _as_array(params)

    def field(name: str) -> pa.Array:
        return pc.struct_field(p, name)

    def text(values: pa.Array) -> pa.Array:
        return pc.fill_null(pc.cast(values, pa.string()), "-")

    temperature, top_p = field("temperature"), field("top_p")
    return {
        "p_max_tokens": text(field("max_tokens")),
        "p_temperature": text(pc.and_(pc.greater_equal(temperature, 0.0), pc.less_equal(temperature, 2.0))),
        "p_top_p": text(pc.and_(pc.greater(top_p, 0.0), pc.less_equal(top_p, 1.0))),
        "p_stream": text(field("stream")),
        "p_format": text(field("response_format")),
        "p_tools": text(pc.is_valid(field("tools_json"))),
        "p_schema": text(pc.is_valid(field("response_schema_json"))),
    }


def signature(columns: list[pa.Array | pa.ChunkedArray]) -> pa.Array:
    """One string per request joining its decision inputs (all already strings)."""
    return _as_array(pc.binary_join_element_wise(*columns, SEP))


def _condition_numbers(condition: Any, field: str, found: set[float]) -> None:
    """Every number a routing condition compares `field` with, however nested ($and, $or, $not)."""
    if not isinstance(condition, dict):
        return
    for key, value in condition.items():
        if key in ("$and", "$or"):
            for part in value:
                _condition_numbers(part, field, found)
        elif key == "$not":
            _condition_numbers(value, field, found)
        elif key == field:
            operands = value.values() if isinstance(value, dict) else [value]
            for operand in operands:
                for number in operand if isinstance(operand, list) else [operand]:
                    if isinstance(number, int | float) and not isinstance(number, bool):
                        found.add(float(number))


def _edges(thresholds: set[float]) -> np.ndarray:
    """Bucket edges for integers such that every comparison with a threshold (<, <=, ==, >=, >) has one
    answer per bucket: each threshold t gives the edges floor(t) and floor(t) + 1."""
    edges = {e for t in thresholds for e in (math.floor(t), math.floor(t) + 1)}
    return np.array(sorted(edges), dtype=np.int64)


def size_edges(policies: tuple[GatewayPolicy, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    """Bucket edges for prompt characters and the content check's token estimate, from every size limit
    and routing condition the policies hold; None when budgets count tokens per minute (they need each
    request's exact estimate, so sizes stay exact)."""
    if any(limit.tokens_per_minute is not None for p in policies for limit in p.budgets.values()):
        return None
    chars: set[float] = set()
    for p in policies:
        chars.add(float(p.validation.max_prompt_chars))
        for route in p.routing.routes.values():
            for condition in route.conditions:
                _condition_numbers(condition.when, "prompt_chars", chars)
    tokens = {float(p.guardrails.max_prompt_tokens) for p in policies}
    return _edges(chars), _edges(tokens)
