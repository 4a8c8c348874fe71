"""`streamgate rag ingest`: files (Markdown, text, HTML, PDF) become Document events on `documents`.

The text is extracted here (features/collections/extract.py), so the indexer needs no access to the
files; a document larger than `INLINE_LIMIT` is sent by reference (a file:// uri the indexer reads),
since a Kafka record is bounded. A document's id is its path relative to the folder given (or its name),
its version the file's modification time in ms unless one is given: ingesting an unchanged file again
is a stale version the indexer skips.
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from features.collections.extract import CONTENT_TYPES, read_document
from schemas import make_codec
from schemas.topics import Topic, physical_name
from streamgate.config import Settings
from streamgate.kafka.clients import producer_config

INLINE_LIMIT = 3_000_000  # characters; the topic accepts 4 MiB records


@dataclass(frozen=True)
class Sent:
    doc_id: str
    version: int
    chars: int
    deleted: bool = False


def files(paths: Iterable[Path]) -> Iterator[tuple[Path, str]]:
    """(file, doc id) for every supported file under the paths given."""
    for path in paths:
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if f.is_file() and f.suffix.lower() in CONTENT_TYPES:
                    yield f, f.relative_to(path).as_posix()
        else:
            yield path, path.name


def document_event(collection: str, doc_id: str, version: int, *, text: str | None = None,
                   title: str | None = None, content_type: str = "text/plain", uri: str | None = None,
                   metadata: dict[str, str] | None = None, deleted: bool = False,
                   produced_by: str | None = None) -> dict[str, Any]:
    return {"collection": collection, "doc_id": doc_id, "version": version, "title": title,
            "content_type": content_type, "text": text, "uri": uri, "metadata": metadata or {},
            "deleted": deleted, "produced_by": produced_by, "produced_at": int(time.time() * 1000)}


class DocumentProducer:
    """Produces Document events keyed collection/doc_id (so one document's versions stay in order)."""

    def __init__(self, settings: Settings) -> None:
        self.topic = physical_name(Topic.DOCUMENTS, settings.kafka.topic_prefix)
        self.codec = make_codec(self.topic, "Document", settings.schema_registry.url)
        self.producer = Producer(producer_config(settings, client_id="streamgate-rag-ingest", role="rag")
                                 | {"message.max.bytes": 4_194_304})

    def send(self, event: dict[str, Any]) -> None:
        key = f"{event['collection']}/{event['doc_id']}".encode()
        self.producer.produce(self.topic, self.codec.encode(event), key)
        self.producer.poll(0)

    def flush(self) -> None:
        if self.producer.flush(60):
            raise RuntimeError("the documents topic did not acknowledge every document")


def ingest(settings: Settings, collection: str, paths: list[Path], *, version: int | None = None,
           delete: bool = False) -> list[Sent]:
    producer, sent, who = DocumentProducer(settings), [], getpass.getuser()
    for path, doc_id in files(paths):
        v = version if version is not None else int(path.stat().st_mtime * 1000) if path.exists() else \
            int(time.time() * 1000)
        if delete:
            producer.send(document_event(collection, doc_id, v, deleted=True, produced_by=who))
            sent.append(Sent(doc_id, v, 0, deleted=True))
            continue
        kind, title, text = read_document(path)
        if len(text) > INLINE_LIMIT:
            event = document_event(collection, doc_id, v, title=title, content_type=kind,
                                   uri=path.resolve().as_uri(), produced_by=who)
        else:
            event = document_event(collection, doc_id, v, text=text, title=title, content_type=kind,
                                   produced_by=who)
        producer.send(event)
        sent.append(Sent(doc_id, v, len(text)))
    producer.flush()
    return sent
