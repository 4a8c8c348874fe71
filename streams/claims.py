"""Dedup claims in memory, persisted as one changelog record per batch and partition.

A claim per request id written through a faust table costs one changelog record per request: a third of
everything the request path produced. Here the claims a batch makes on one partition travel as one
record (key `<partition>@<first offset>`, value `{request id: claim}`) in the table's changelog, sent and
awaited with the batch's outputs. After a crash faust restores those records into the table's store;
the index by request id is rebuilt from the store whenever the store changed under it (a recovery, a
revoked partition).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from streams.pipeline import check_claim

#: (partition, changelog key, changelog value) of one batch's new claims on one partition.
ClaimRecord = tuple[int, bytes, dict[str, list[int]]]


class BatchedClaims:
    """`duplicate` for :class:`streams.pipeline.RequestPath`, then `flush` once per batch."""

    def __init__(self, store: MutableMapping[Any, Any], window_ms: int) -> None:
        self.store, self.window_ms = store, window_ms
        self._index: dict[bytes, list[int]] = {}
        self._indexed_records = -1
        self._pending: dict[int, tuple[int, dict[str, list[int]]]] = {}  # partition -> (first offset, claims)

    def duplicate(self, request_id: bytes, partition: int, offset: int, now_ms: int) -> bool:
        if len(self.store) != self._indexed_records:
            self._reindex()
        dup, new = check_claim(self._index.get(request_id), offset, now_ms, self.window_ms)
        if new is not None:
            self._index[request_id] = new
            _, claims = self._pending.setdefault(partition, (offset, {}))
            claims[request_id.decode()] = new
        return dup

    def flush(self) -> list[ClaimRecord]:
        """The changelog records for the claims made since the last flush; also kept in the store."""
        records = []
        changed_under_us = len(self.store) != self._indexed_records  # e.g. a recovery during the batch
        for partition, (first, claims) in self._pending.items():
            key = f"{partition}@{first}".encode()
            held = self.store.get(key) or {}
            value = {**held, **claims}  # a replayed batch may rewrite its key: keep what it held
            self.store[key] = value
            records.append((partition, key, value))
        self._pending.clear()
        self._indexed_records = -1 if changed_under_us else len(self.store)
        return records

    def _reindex(self) -> None:
        """Rebuild the index from the store; of two claims for one id the later one wins, as it would
        have in a table keyed by request id."""
        index: dict[bytes, list[int]] = {}
        for key, value in self.store.items():
            # a list is a claim of one request keyed by its id, as the table held them before batching
            held = {key.decode(): value} if isinstance(value, list) else (value or {})
            for request_id, claim in held.items():
                rid = request_id.encode()
                if rid not in index or claim[0] >= index[rid][0]:
                    index[rid] = list(claim)
        for _, claims in self._pending.values():  # not yet flushed: not in the store
            index.update((rid.encode(), claim) for rid, claim in claims.items())
        self._index, self._indexed_records = index, len(self.store)
