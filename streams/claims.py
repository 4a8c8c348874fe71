"""Dedup claims in memory, persisted as one changelog record per batch and partition.

A claim per request id written through a faust table costs one changelog record per request: a third of
everything the request path produced. Here the claims a batch makes on one partition travel as one
record (key `<partition>@<first offset>`, value `{request id: claim}`) in the table's changelog, sent and
awaited with the batch's outputs (on the transactions engine, inside the batch's transaction). After a
crash faust restores those records into the table's store, and the transactions engine reads them back
on assignment (`load`); the index by request id is rebuilt from the store whenever the store changed
under it (a recovery, a revoked partition). A record whose claims are all older than the dedup window
can decide nothing any more: it is deleted and a tombstone sent, so neither memory nor the changelog
grows with traffic.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, MutableMapping
from typing import Any

from streams.pipeline import check_claim

#: (partition, changelog key, changelog value) of one batch's new claims on one partition; a value of
#: None is a tombstone for a record whose claims all expired.
ClaimRecord = tuple[int, bytes, dict[str, list[int]] | None]
#: How often flush looks for expired records.
EXPIRE_EVERY_MS = 10_000
#: Changelog keys `next-offset/<partition>`: the transactions engine's consumer position of that requests
#: partition, committed in the same transaction as the claims and outputs (streams/loop.py). Not claims.
POSITION_PREFIX = b"next-offset/"


def position_record(partition: int, next_offset: int, finished: Iterable[int] = ()) -> tuple[bytes, bytes]:
    """(key, value) of a partition's position record in the changelog. `finished`: offsets past the
    position whose outcomes are committed already (the fused worker finishes requests out of order), as
    inclusive ranges."""
    value: dict[str, Any] = {"offset": next_offset}
    if ranges := _ranges(finished):
        value["finished"] = ranges
    return POSITION_PREFIX + str(partition).encode(), json.dumps(value).encode()


def read_finished(value: bytes | None) -> set[int]:
    """The offsets past the position a position record says are finished."""
    if value is None:
        return set()
    ranges = json.loads(value).get("finished") or []
    return {offset for first, last in ranges for offset in range(first, last + 1)}


def _ranges(offsets: Iterable[int]) -> list[list[int]]:
    ranges: list[list[int]] = []
    for offset in sorted(offsets):
        if ranges and ranges[-1][1] == offset - 1:
            ranges[-1][1] = offset
        else:
            ranges.append([offset, offset])
    return ranges


def read_position(key: bytes, value: bytes | None) -> tuple[int, int | None] | None:
    """(partition, next offset or None for a tombstone) if the record is a position record, else None."""
    if not key.startswith(POSITION_PREFIX):
        return None
    partition = int(key[len(POSITION_PREFIX):])
    return partition, None if value is None else int(json.loads(value)["offset"])


class BatchedClaims:
    """`duplicate` for :class:`streams.pipeline.RequestPath`, then `flush` once per batch."""

    def __init__(self, store: MutableMapping[Any, Any], window_ms: int) -> None:
        self.store, self.window_ms = store, window_ms
        self._index: dict[bytes, list[int]] = {}
        self._indexed_records = -1
        self._pending: dict[int, tuple[int, dict[str, list[int]]]] = {}  # partition -> (first offset, claims)
        self._newest: dict[Any, int] = {}  # batch record key -> its newest claim's ms
        self._expired_at = 0

    def duplicate(self, request_id: bytes, partition: int, offset: int, now_ms: int) -> bool:
        if len(self.store) != self._indexed_records:
            self._reindex()
        dup, new = check_claim(self._index.get(request_id), offset, now_ms, self.window_ms)
        if new is not None:
            self._index[request_id] = new
            _, claims = self._pending.setdefault(partition, (offset, {}))
            claims[request_id.decode()] = new
        return dup

    def load(self, key: bytes, value: dict[str, list[int]] | None) -> None:
        """One changelog record read back on assignment (None: its tombstone)."""
        if value is None:
            self.store.pop(key, None)
        else:
            self.store[key] = value
        self._indexed_records = -1  # the index is rebuilt at the next use

    def forget(self, partitions: Collection[int]) -> None:
        """Drop the claims of partitions this worker no longer owns; their new owner loads them."""
        prefixes = tuple(f"{p}@".encode() for p in partitions)
        for key in [k for k in self.store if isinstance(k, bytes) and k.startswith(prefixes)]:
            del self.store[key]
        for partition in partitions:
            self._pending.pop(partition, None)
        self._indexed_records = -1

    def flush(self, now_ms: int | None = None) -> list[ClaimRecord]:
        """The changelog records for the claims made since the last flush (also kept in the store) and,
        every EXPIRE_EVERY_MS of `now_ms`, tombstones for the records that expired."""
        records: list[ClaimRecord] = []
        changed_under_us = len(self.store) != self._indexed_records  # e.g. a recovery during the batch
        for partition, (first, claims) in self._pending.items():
            key = f"{partition}@{first}".encode()
            held = self.store.get(key) or {}
            value = {**held, **claims}  # a replayed batch may rewrite its key: keep what it held
            self.store[key] = value
            self._newest[key] = max(claim[0] for claim in value.values())
            records.append((partition, key, value))
        self._pending.clear()
        self._indexed_records = -1 if changed_under_us else len(self.store)
        if now_ms is not None and now_ms - self._expired_at >= EXPIRE_EVERY_MS:
            records += self._expire(now_ms)
        return records

    def _expire(self, now_ms: int) -> list[ClaimRecord]:
        self._expired_at = now_ms
        if self._indexed_records == -1:
            self._reindex()
        horizon = now_ms - self.window_ms
        gone: list[ClaimRecord] = []
        for key in [k for k, newest in self._newest.items() if newest < horizon]:
            del self._newest[key]
            held = self.store.pop(key, None) or {}
            for request_id, claim in held.items():
                rid = request_id.encode()
                if self._index.get(rid) == list(claim):  # not claimed again by a later record
                    del self._index[rid]
            gone.append((int(key.split(b"@", 1)[0]), key, None))
        self._indexed_records = len(self.store)
        return gone

    def _reindex(self) -> None:
        """Rebuild the index from the store; of two claims for one id the later one wins, as it would
        have in a table keyed by request id."""
        index: dict[bytes, list[int]] = {}
        newest: dict[Any, int] = {}
        for key, value in self.store.items():
            if isinstance(key, bytes) and key.startswith(POSITION_PREFIX):  # restored by faust: no claims
                continue
            # a list is a claim of one request keyed by its id, as the table held them before batching
            held = {key.decode(): value} if isinstance(value, list) else (value or {})
            if isinstance(value, dict) and value and b"@" in key:  # batch records expire; old ones stay
                newest[key] = max(claim[0] for claim in value.values())
            for request_id, claim in held.items():
                rid = request_id.encode()
                if rid not in index or claim[0] >= index[rid][0]:
                    index[rid] = list(claim)
        for _, claims in self._pending.values():  # not yet flushed: not in the store
            index.update((rid.encode(), claim) for rid, claim in claims.items())
        self._index, self._newest, self._indexed_records = index, newest, len(self.store)
