"""The RAG indexer: `documents` -> chunks, embedded, in a Delta table and the online store, exactly once.

Each batch of document events is decided in offset order: a version above the one indexed replaces the
document's chunks, a deletion removes them (and keeps the version, so an older event arriving late never
brings it back), anything else is stale and skipped (counted). Documents are keyed by collection/doc_id,
so every version of one document is in one partition, in order.

Two stores, each written with the offsets it has applied in the same atomic commit: the Delta table
(`rag.table`, one MERGE per batch whose commit carries a delta-rs application transaction per source
partition) and the online store (one SQLite or PostgreSQL transaction, features/collections/online.py and
pg_online.py). A partition
resumes after the lower of the two offsets; a record at or below a store's own offset is not written to
that store again. Decisions depend only on the record sequence and the versions the online store held
at that offset, so a replay decides the same way and both stores end identical after a kill -9 at any
moment (tests/integration/test_rag_indexer_kill.py kills it in a loop).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pyarrow as pa
from confluent_kafka import Message, Producer
from deltalake import CommitProperties, DeltaTable, Transaction
from deltalake.exceptions import TableNotFoundError
from threadpoolctl import threadpool_limits

from features.collections.chunking import chunk, chunk_id
from features.collections.extract import html_text
from features.collections.online import ChunkRow, ChunkStore, OnlineStore
from schemas import EventDecodeError, dead_letter, dead_letter_from_error, make_codec
from schemas.topics import Topic, physical_name
from shared.embeddings.minilm import MiniLM
from shared.policy.holder import PolicyHolder
from shared.tables.batch_sink import ExactlyOnceBatchSink, delta_transaction_version
from shared.tables.delta import open_table, write_table
from streamgate.config import Settings
from streamgate.kafka.clients import producer_config
from streamgate.observability import Heartbeat
from streamgate.storage import TablePath

log = logging.getLogger("streamgate.rag")
C = "rag_indexer"

CHUNK_SCHEMA = pa.schema([
    ("collection", pa.string()), ("doc_id", pa.string()), ("doc_key", pa.string()),
    ("doc_version", pa.int64()), ("chunk_id", pa.string()), ("seq", pa.int32()), ("title", pa.string()),
    ("text", pa.string()), ("embedding", pa.list_(pa.float32())), ("metadata_json", pa.string()),
    ("produced_at", pa.timestamp("ms", tz="UTC")), ("indexed_at", pa.timestamp("ms", tz="UTC")),
    ("_partition", pa.int32()), ("_offset", pa.int64()),
])


def chunks_table(settings: Settings) -> TablePath:
    return settings.table_root() / settings.rag.table


def online_path(settings: Settings) -> Path:
    return settings.resolve(settings.rag.online_db)


def open_online(settings: Settings) -> ChunkStore:
    """The configured online store (`rag.online_store`): the embedded SQLite file or the PostgreSQL server."""
    if settings.rag.online_store == "postgres":
        from features.collections.pg_online import PgOnlineStore

        return PgOnlineStore(settings.rag.postgres_dsn)
    return OnlineStore(online_path(settings))


@dataclass
class _Decision:
    """What one document ends as after a batch: its version, deleted or not, and the event that said so."""

    version: int
    deleted: bool
    event: dict[str, Any]
    partition: int
    offset: int


class RagIndexer(ExactlyOnceBatchSink):
    def __init__(self, settings: Settings, policy: PolicyHolder, *, instance: str = "0",
                 embedder: MiniLM | None = None, heartbeat: Heartbeat | None = None) -> None:
        prefix, registry = settings.kafka.topic_prefix, settings.schema_registry.url
        self.topic = physical_name(Topic.DOCUMENTS, prefix)
        self.codec = make_codec(self.topic, "Document", registry)
        self.policy = policy
        self.table_path = chunks_table(settings)
        self.online = open_online(settings)
        self.embedder = embedder or MiniLM(settings.dispatch.cache.semantic.model_dir)
        # BLAS on the calling thread only: on a small shared machine a second BLAS thread spins against
        # the consumer and everything else (the semantic cache measured 3x slower under load with it)
        threadpool_limits(1)
        self.deadletters = physical_name(Topic.DEADLETTER, prefix)
        self.dl_codec = make_codec(self.deadletters, "DeadLetter", registry)
        self.producer = Producer(producer_config(settings, client_id="streamgate-rag", role="rag"))
        rag = settings.rag
        super().__init__(settings, component=C, group=prefix + rag.group_id, topics=[self.topic],
                         role="rag", instance=instance, batch_size=rag.batch_docs, flush_s=rag.flush_s,
                         heartbeat=heartbeat)
        self.delta_done: dict[int, int | None] = {}
        self.online_done: dict[int, int | None] = {}
        self.versions = self.online.versions()
        self._table: DeltaTable | None = None

    # --- where each store stands --------------------------------------------------------------------
    def applied(self, topic: str, partition: int) -> int | None:
        app_id = self.app_id(topic, partition)
        self.delta_done[partition] = delta_transaction_version(self.table_path, app_id)
        self.online_done[partition] = self.online.applied(app_id)
        self.versions = self.online.versions()  # another instance may have indexed this partition meanwhile
        done = [self.delta_done[partition], self.online_done[partition]]
        return None if None in done else min(d for d in done if d is not None)

    @staticmethod
    def _after(done: int | None, offset: int) -> bool:
        return done is None or offset > done

    # --- one batch -----------------------------------------------------------------------------------
    def write(self, topic: str, messages: list[Message], last: dict[int, int]) -> None:
        for_delta: dict[tuple[str, str], _Decision] = {}
        for_online: dict[tuple[str, str], _Decision] = {}
        for msg in messages:
            partition, offset = msg.partition() or 0, msg.offset() or 0
            decision = self._decide(msg, partition, offset)
            if decision is None:
                continue
            key = (decision.event["collection"], decision.event["doc_id"])
            if self._after(self.delta_done.get(partition), offset):
                for_delta[key] = decision
            if self._after(self.online_done.get(partition), offset):
                for_online[key] = decision
        chunks = self._chunk({**for_online, **for_delta})
        # Delta first, then the online store: the online store can then be ahead of Delta only by batches
        # that changed nothing in Delta (all stale or dead-lettered), so replaying them against versions
        # read from the online store decides them the same way. Do not swap the two writes.
        self._write_delta(for_delta, chunks, last)
        online_offsets = {self.app_id(topic, p): o for p, o in last.items()}
        self.online.apply({k: (d.version, d.deleted, *chunks.get(k, ([], np.zeros((0, 384), np.float32))))
                           for k, d in for_online.items()}, online_offsets)
        for p, o in last.items():
            if for_delta:
                self.delta_done[p] = o
            self.online_done[p] = o
        self.counts["docs"] += len(for_online)
        self.counts["chunks"] += sum(len(rows) for rows, _ in chunks.values())
        self.producer.flush(10)

    def _decide(self, msg: Message, partition: int, offset: int) -> _Decision | None:
        raw = msg.value() or b""
        first_time = self._after(max(self.delta_done.get(partition) or -1,
                                     self.online_done.get(partition) or -1), offset)
        try:
            event = self.codec.decode(raw, partition=partition, offset=offset)
        except EventDecodeError as err:
            self._dead(first_time, dead_letter_from_error(err, raw_value=raw, raw_key=msg.key(),
                                                          stage="rag-decode"))
            return None
        collection = event["collection"]
        if collection not in self.policy.policy.rag_collections:
            self._dead(first_time, dead_letter(
                self.topic, partition, offset, "rag-index", "unknown_collection",
                f"collection {collection!r} is not declared in the gateway policy (rag_collections)", raw,
                msg.key()))
            return None
        if not event["deleted"] and event.get("text") is None and not event.get("uri"):
            self._dead(first_time, dead_letter(self.topic, partition, offset, "rag-index", "no_text",
                                               "a document event needs text or a uri", raw, msg.key()))
            return None
        if not event["deleted"]:
            try:
                event["text"] = self._text(event)
            except (OSError, ValueError) as exc:
                self._dead(first_time, dead_letter(self.topic, partition, offset, "rag-index", "unreadable",
                                                   f"cannot read the document: {exc}", raw, msg.key()))
                return None
        key = (collection, event["doc_id"])
        held = self.versions.get(key)
        version, deleted = int(event["version"]), bool(event["deleted"])
        if held is not None and (version < held[0] or (version == held[0] and not deleted)):
            self.counts["stale"] += 1
            log.info("stale %s/%s v%s (v%s indexed) skipped", collection, event["doc_id"], version, held[0])
            return None
        self.versions[key] = (version, deleted)
        self.counts["deleted" if deleted else "versions"] += 1
        return _Decision(version, deleted, event, partition, offset)

    def _dead(self, first_time: bool, letter: dict[str, Any]) -> None:
        self.counts["dead"] += 1
        log.warning("document dead-lettered: %s %s", letter["reason_code"], letter["message"])
        if first_time:  # a replay of a batch already written must not dead-letter it twice
            self.producer.produce(self.deadletters, self.dl_codec.encode(letter), letter["original_key"])

    def _text(self, event: dict[str, Any]) -> str:
        if event.get("text") is not None:
            text: str = event["text"]
        else:
            uri = urlparse(event["uri"])
            if uri.scheme not in ("", "file"):
                raise ValueError(f"unsupported document uri scheme {uri.scheme!r} (file:// only)")
            text = Path(uri.path).read_text(encoding="utf-8", errors="replace")
        if event["content_type"] == "text/html":
            return html_text(text)[1]
        return text

    def _chunk(self, decided: dict[tuple[str, str], _Decision]
               ) -> dict[tuple[str, str], tuple[list[ChunkRow], Any]]:
        """Chunks and their vectors of every document that ends with a version (embedded in one batch)."""
        rows: dict[tuple[str, str], list[ChunkRow]] = {}
        for key, d in decided.items():
            if d.deleted:
                continue
            spec = self.policy.policy.rag_collections[key[0]]
            e = d.event
            passages = chunk(e["text"], title=e.get("title"), markdown=e["content_type"] != "text/plain",
                             max_chars=spec.chunk_chars, overlap=spec.chunk_overlap)
            rows[key] = [ChunkRow(key[0], key[1], d.version, chunk_id(key[0], key[1], d.version, p.seq),
                                  p.seq, e.get("title"), p.text) for p in passages]
        texts = [r.text for chunk_rows in rows.values() for r in chunk_rows]
        vectors = self.embedder.embed(texts) if texts else np.zeros((0, 384), np.float32)
        out: dict[tuple[str, str], tuple[list[ChunkRow], Any]] = {}
        at = 0
        for key, chunk_rows in rows.items():
            out[key] = (chunk_rows, vectors[at:at + len(chunk_rows)])
            at += len(chunk_rows)
        return out

    def _write_delta(self, decided: dict[tuple[str, str], _Decision],
                     chunks: dict[tuple[str, str], tuple[list[ChunkRow], Any]], last: dict[int, int]) -> None:
        """One MERGE: the batch's documents lose their old chunks and gain their new ones; the commit
        carries each partition's last offset."""
        if not decided:
            return
        now = int(time.time() * 1000)
        cols: dict[str, list[Any]] = {f.name: [] for f in CHUNK_SCHEMA}
        for key, d in decided.items():
            chunk_rows, vectors = chunks.get(key, ([], []))
            metadata = json.dumps(d.event.get("metadata") or {}, sort_keys=True)
            for row, vector in zip(chunk_rows, vectors, strict=True):
                values = (row.collection, row.doc_id, f"{row.collection}/{row.doc_id}", row.version,
                          row.chunk_id, row.seq, row.title, row.text, np.asarray(vector).tolist(), metadata,
                          d.event["produced_at"], now, d.partition, d.offset)
                for name, value in zip(cols, values, strict=True):
                    cols[name].append(value)
        source = pa.table(cols, schema=CHUNK_SCHEMA)
        txns = [Transaction(self.app_id(self.topic, p), o) for p, o in last.items()]
        keys = ", ".join("'" + f"{c}/{d}".replace("'", "''") + "'" for c, d in decided)
        table = self._delta()
        (table.merge(source, "t.chunk_id = s.chunk_id", source_alias="s", target_alias="t",
                     commit_properties=CommitProperties(app_transactions=txns))
         .when_matched_update_all()
         .when_not_matched_insert_all()
         .when_not_matched_by_source_delete(f"t.doc_key IN ({keys})")
         .execute())

    def _delta(self) -> DeltaTable:
        if self._table is None:
            try:
                self._table = open_table(self.table_path)
            except TableNotFoundError:
                write_table(self.table_path, CHUNK_SCHEMA.empty_table(), mode="append")
                self._table = open_table(self.table_path)
        else:
            self._table.update_incremental()
        return self._table

    def close(self) -> None:
        self.producer.flush(10)
        self.online.close()
