"""Retrieved context for requests tagged for RAG, added by the request path before routing.

A request with the tag `rag: <collection>` gets the passages a `ContextRetriever` finds for its last
user message, as one system message ahead of the conversation. In order:

1. Access: a collection declared in the policy (`rag_collections`) is served only to its owner and its
   readers; any other team's request is rejected `rag_denied` (audited). An undeclared collection is
   refused the same way, except `docs`, the project's own documentation, which every team may read.
2. It runs after the input guardrails, so it never changes what they judged (the caller's text).
3. The retrieved text is scanned for PII under the requesting team's actions before it can reach a
   provider (a collection may hold PII): redacted like a prompt, and a passage holding an entity the
   team must not send is left out. The scan's findings are a guardrail verdict (`stage: context`).
4. Lineage: `metadata["rag"]` says which collection and how many passages, and `metadata["rag.chunks"]`
   lists the chunks given (collection, document, version, chunk id); the dispatcher copies that list into
   the Response's and Telemetry's `rag_chunks`, so the lakehouse knows which documents fed which answer.

The feature store implements the retrievers (features/rag.py for `docs`, features/collections/ for the
teams' collections); apps wire them in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from shared.guardrails.outcome import Rejection
from shared.guardrails.verdicts import PiiScanner, verdict_event
from shared.policy.config import GatewayPolicy
from shared.retrieval import CHUNKS_KEY, ContextRetriever, Passage

RAG_TAG = "rag"
#: Everyone may read the project's own docs (features/rag.py indexes them) unless the policy declares it.
OPEN_COLLECTIONS = frozenset({"docs"})
DEFAULT_TOP_K = 3


@dataclass
class Contexted:
    """The event to route (the same object when nothing was added), or a rejection; and verdicts."""

    event: dict[str, Any] | None
    rejection: Rejection | None = None
    verdicts: list[dict[str, Any]] = field(default_factory=list)


def may_read(policy: GatewayPolicy, collection: str, team: str) -> Rejection | None:
    spec = policy.rag_collections.get(collection)
    if spec is None and collection not in OPEN_COLLECTIONS:
        return Rejection("route", "rag_denied", f"RAG collection {collection!r} is not declared in policy "
                         f"{policy.version}", audit=True)
    if spec is not None and not spec.may_read(team):
        return Rejection("route", "rag_denied", f"team {team!r} may not read RAG collection {collection!r} "
                         f"(owner {spec.owner})", audit=True)
    return None


def with_context(event: dict[str, Any], retriever: ContextRetriever | None, policy: GatewayPolicy,
                 scan_pii: PiiScanner) -> Contexted:
    collection = (event.get("tags") or {}).get(RAG_TAG)
    if not collection:
        return Contexted(event)
    denied = may_read(policy, collection, event["team"])
    if denied is not None:
        return Contexted(None, denied)
    question = next((m["content"] for m in reversed(event["messages"]) if m["role"] == "user"), "")
    if retriever is None or not question:
        return Contexted(event)  # no retriever configured here: the tag is ignored
    spec = policy.rag_collections.get(collection)
    found = retriever.passages(collection, question, spec.top_k if spec else DEFAULT_TOP_K)
    verdicts: list[dict[str, Any]] = []
    if found:
        scanned = scan_pii([p.text for p in found], policy, event["team"])
        if scanned.findings:
            blocked = {f.message_index for f in scanned.findings if f.action == "block"}
            kept = enumerate(zip(found, scanned.texts, strict=True))
            found = [Passage(text, p.collection, p.doc_id, p.doc_version, p.chunk_id)
                     for i, (p, text) in kept if i not in blocked]
            reason = f"retrieved context: {len(blocked)} passages left out" if blocked else None
            verdicts.append(verdict_event(event, policy, "pii", "block" if blocked else scanned.action,
                                          scanned.findings, reason, stage="context"))
    if not found:
        return Contexted(event, verdicts=verdicts)
    text = "Answer using this context where it helps.\n\n" + "\n\n".join(
        f"[{n}] {p.text}" for n, p in enumerate(found, 1))
    system = {"role": "system", "content": text, "name": None}
    refs = json.dumps([[p.collection, p.doc_id, p.doc_version, p.chunk_id] for p in found],
                      separators=(",", ":"))
    metadata = {**(event.get("metadata") or {}), "rag": f"{collection}:{len(found)}", CHUNKS_KEY: refs}
    routed = {**event, "messages": [system, *event["messages"]], "metadata": metadata}
    return Contexted(routed, verdicts=verdicts)
