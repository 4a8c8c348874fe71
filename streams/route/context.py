"""Retrieved context for requests tagged for RAG, added by the request path before routing.

A request with the tag `rag: <collection>` gets the passages a `ContextRetriever` finds for its last
user message, as one system message ahead of the conversation, and `metadata["rag"]` says which
collection and how many passages. It runs after input guardrails, so it never changes what they saw.
The feature store implements the retriever (features/rag.py: `DocsRetriever`, vector search in Feast).
"""

from __future__ import annotations

from typing import Any, Protocol

RAG_TAG = "rag"


class ContextRetriever(Protocol):
    def passages(self, collection: str, question: str) -> list[str]: ...


def with_context(event: dict[str, Any], retriever: ContextRetriever | None) -> dict[str, Any]:
    """The event with retrieved context added, or the same event when it is not tagged (or nothing was
    found, or no retriever is configured)."""
    collection = (event.get("tags") or {}).get(RAG_TAG)
    if not collection or retriever is None:
        return event
    question = next((m["content"] for m in reversed(event["messages"]) if m["role"] == "user"), "")
    found = retriever.passages(collection, question) if question else []
    if not found:
        return event
    text = "Answer using this context where it helps.\n\n" + "\n\n".join(
        f"[{n}] {p}" for n, p in enumerate(found, 1))
    system = {"role": "system", "content": text, "name": None}
    return {**event, "messages": [system, *event["messages"]],
            "metadata": {**(event.get("metadata") or {}), "rag": f"{collection}:{len(found)}"}}
