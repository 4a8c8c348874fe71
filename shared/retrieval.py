"""What the request path asks of a retriever, and what it gets: passages with their lineage.

The feature store implements retrievers (features/rag.py for the project's docs, features/collections/
for the teams' collections); the request path (streams/route/context.py) only knows this protocol.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

#: The routed request's metadata key listing the chunks it was given: [[collection, doc, version, chunk]].
CHUNKS_KEY = "rag.chunks"


@dataclass(frozen=True, slots=True)
class Passage:
    text: str
    collection: str
    doc_id: str
    doc_version: int
    chunk_id: str


class ContextRetriever(Protocol):
    def passages(self, collection: str, question: str, top_k: int) -> list[Passage]: ...


def chunk_refs(metadata: dict[str, str] | None) -> list[dict[str, Any]]:
    """The Response/Telemetry `rag_chunks` of a routed request (empty when it had no context)."""
    raw = (metadata or {}).get(CHUNKS_KEY)
    if not raw:
        return []
    return [{"collection": c, "doc_id": d, "doc_version": int(v), "chunk_id": k}
            for c, d, v, k in json.loads(raw)]
