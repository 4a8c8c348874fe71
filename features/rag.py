"""RAG over the project's own docs: chunk, embed, store as Delta, serve by vector search in Feast.

Chunks are the Markdown sections of README.md and docs/*.md (split further at paragraphs past
`MAX_CHARS`), each prefixed with its heading path so a chunk says what it is about. They are embedded
with the semantic cache's all-MiniLM-L6-v2 (numpy, shipped weights), written to the `doc_chunks`
feature table, materialized into the SQLite online store and searched with sqlite-vec through
`retrieve_online_documents_v2`. A chunk's `source` is `file#heading`, which the labeled questions
name (bench/data/rag_questions.jsonl).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
from feast import FeatureStore

from features import tables
from shared.embeddings.minilm import MiniLM
from shared.retrieval import Passage
from streamgate.config import REPO_ROOT, Settings

MAX_CHARS = 900
_HEADING = re.compile(r"^(#{1,4})\s+(.*)$")


@dataclass(frozen=True)
class Chunk:
    source: str  # file#heading
    text: str

    @property
    def chunk_id(self) -> str:
        return hashlib.sha256(f"{self.source}\n{self.text}".encode()).hexdigest()[:16]


def default_docs() -> list[Path]:
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def chunk_markdown(name: str, text: str) -> list[Chunk]:
    """Sections by heading; a long section is cut at paragraph breaks; code fences stay whole."""
    chunks: list[Chunk] = []
    heading, lines = name, list[str]()

    def flush() -> None:
        body = "\n".join(lines).strip()
        if body:
            chunks.extend(Chunk(f"{name}#{heading}", f"{heading}\n{part}") for part in _split(body))

    in_fence = False
    for line in text.splitlines():
        in_fence ^= line.lstrip().startswith("```")
        match = None if in_fence else _HEADING.match(line)
        if match:
            flush()
            heading, lines = match.group(2).strip(), []
        else:
            lines.append(line)
    flush()
    return chunks


def _split(body: str) -> list[str]:
    parts, current = [], ""
    for para in re.split(r"\n\s*\n", body):
        if current and len(current) + len(para) > MAX_CHARS:
            parts.append(current)
            current = ""
        current = f"{current}\n\n{para}" if current else para
    return [*parts, current] if current else parts


def index_docs(settings: Settings, store: FeatureStore, docs: list[Path] | None = None,
               embedder: MiniLM | None = None) -> int:
    """Chunk and embed `docs`, replace the `doc_chunks` table and materialize it online."""
    chunks = [c for path in docs or default_docs() for c in chunk_markdown(path.name, path.read_text())]
    model = embedder or MiniLM(settings.dispatch.cache.semantic.model_dir)
    vectors = model.embed([c.text for c in chunks])
    now = datetime.now(UTC)
    rows = pa.table({"chunk_id": [c.chunk_id for c in chunks], "event_timestamp": [now] * len(chunks),
                     "source": [c.source for c in chunks], "text": [c.text for c in chunks],
                     "embedding": [v.tolist() for v in vectors]})
    tables.append(settings, "doc_chunks", rows, overwrite=True)
    store.materialize(now - timedelta(minutes=1), now + timedelta(seconds=1), feature_views=["doc_chunks"])
    return len(chunks)


@dataclass(frozen=True)
class Hit:
    source: str
    text: str
    distance: float


def retrieve(store: FeatureStore, embedder: MiniLM, question: str, top_k: int = 5) -> list[Hit]:
    query = embedder.embed([question])[0].tolist()
    got = store.retrieve_online_documents_v2(features=["doc_chunks:source", "doc_chunks:text"], query=query,
                                             top_k=top_k, distance_metric="cosine").to_dict()
    hits = [Hit(s, t, float(d)) for s, t, d in zip(got["source"], got["text"], got["distance"], strict=True)]
    return sorted(hits, key=lambda h: h.distance)


def recall_at_k(store: FeatureStore, embedder: MiniLM, questions: list[dict[str, object]],
                k: int = 5) -> float:
    """Share of questions with one of their expected sources (`file#heading`) among the top k."""
    found = 0
    for q in questions:
        expected = set(q["sources"])  # type: ignore[call-overload]
        found += any(h.source in expected for h in retrieve(store, embedder, str(q["question"]), k))
    return found / len(questions) if questions else 0.0


class DocsRetriever:
    """The request path's `ContextRetriever` for the `docs` collection (streams/route/context.py).

    Embedding a question costs a few ms of CPU on the request path, paid only by tagged requests;
    passages farther than `max_distance` (L2 between unit vectors; 1.2 ~ cosine 0.28) are left out.
    """

    COLLECTION = "docs"

    def __init__(self, store: FeatureStore, embedder: MiniLM, top_k: int = 3, max_distance: float = 1.2):
        self.store, self.embedder, self.top_k, self.max_distance = store, embedder, top_k, max_distance

    def passages(self, collection: str, question: str, top_k: int | None = None) -> list[Passage]:
        if collection != self.COLLECTION:
            return []
        hits = retrieve(self.store, self.embedder, question, top_k or self.top_k)
        return [Passage(h.text, self.COLLECTION, h.source.split("#")[0], 0, _chunk_id(h.source, h.text))
                for h in hits if h.distance <= self.max_distance]


def _chunk_id(source: str, text: str) -> str:
    return Chunk(source, text).chunk_id
