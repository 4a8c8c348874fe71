"""Retrieval from the teams' collections: vectors (sqlite-vec), BM25 (FTS5), or both fused.

Hybrid is reciprocal-rank fusion of the two candidate lists: no score calibration between a cosine
distance and a BM25 score is needed, and docs/benchmarks.md measures it against each alone on a public
IR set. The question is embedded with the same model as the chunks (one ~7 ms numpy call on this machine,
paid only by tagged requests).
"""

from __future__ import annotations

from typing import Literal

from features.collections.online import ChunkStore, Hit, fuse
from shared.embeddings.minilm import MiniLM
from shared.retrieval import Passage

Mode = Literal["vector", "bm25", "hybrid"]


class CollectionRetriever:
    """The request path's `ContextRetriever` for every declared collection (access is checked by the
    request path before it asks)."""

    def __init__(self, store: ChunkStore, embedder: MiniLM, *, mode: Mode = "hybrid",
                 candidates: int = 20) -> None:
        self.store, self.embedder, self.mode, self.candidates = store, embedder, mode, candidates

    def search(self, collection: str, question: str, top_k: int, mode: Mode | None = None) -> list[Hit]:
        mode = mode or self.mode
        pool = max(self.candidates, top_k)
        if mode == "bm25":
            return self.store.hits(self.store.bm25_ids(collection, question, top_k))
        vector = self.store.vector_ids(collection, self.embedder.embed([question])[0], pool)
        if mode == "vector":
            return self.store.hits(vector[:top_k])
        return self.store.hits(fuse([vector, self.store.bm25_ids(collection, question, pool)], top_k))

    def passages(self, collection: str, question: str, top_k: int) -> list[Passage]:
        return [Passage(h.text, h.collection, h.doc_id, h.version, h.chunk_id)
                for h in self.search(collection, question, top_k)]


class Retrievers:
    """One retriever per collection name, with a fallback for the rest (the docs have their own)."""

    def __init__(self, default: CollectionRetriever | None, **named: object) -> None:
        self.default, self.named = default, named

    def passages(self, collection: str, question: str, top_k: int) -> list[Passage]:
        chosen = self.named.get(collection, self.default)
        if chosen is None:
            return []
        found: list[Passage] = chosen.passages(collection, question, top_k)  # type: ignore[attr-defined]
        return found
