"""RAG context in the request path: only tagged requests change, by one leading system message; access to
a collection is decided by the policy; retrieved text is PII-scanned; the chunks given are recorded."""

from __future__ import annotations

import json
from typing import Any

from shared.guardrails.pii import scan_pii
from shared.policy.config import GatewayPolicy, RagCollection, load_policy
from shared.retrieval import Passage, chunk_refs
from streams.route.context import with_context


class Passages:
    def __init__(self, found: list[str]) -> None:
        self.found, self.asked = found, list[tuple[str, str, int]]()

    def passages(self, collection: str, question: str, top_k: int) -> list[Passage]:
        self.asked.append((collection, question, top_k))
        return [Passage(t, collection, f"doc{i}.md", 7, f"c{i}") for i, t in enumerate(self.found)]


def _policy(**collections: RagCollection) -> GatewayPolicy:
    base = load_policy()
    return base.model_copy(update={"rag_collections": collections})


def _event(**over: Any) -> dict[str, Any]:
    return {"request_id": "r1", "team": "support",
            "messages": [{"role": "system", "content": "be brief", "name": None},
                         {"role": "user", "content": "first", "name": None},
                         {"role": "assistant", "content": "ok", "name": None},
                         {"role": "user", "content": "how are budgets enforced?", "name": None}],
            "tags": {}, "metadata": {"guard.pii": "redact:EMAIL"}} | over


KB = RagCollection(owner="support", readers=["search"], top_k=2)


def test_untagged_requests_are_left_alone() -> None:
    retriever = Passages(["a passage"])
    event = _event()
    assert with_context(event, retriever, _policy(), scan_pii).event is event and retriever.asked == []
    tagged = _event(tags={"rag": "docs"})
    assert with_context(tagged, None, _policy(), scan_pii).event is tagged  # no retriever: tag ignored


def test_tagged_request_gets_passages_and_records_which_chunks() -> None:
    retriever = Passages(["Budgets are checked against ...", "LiveUsage follows ..."])
    event = _event(tags={"rag": "kb"})
    out = with_context(event, retriever, _policy(kb=KB), scan_pii).event
    assert out is not None
    assert retriever.asked == [("kb", "how are budgets enforced?", 2)]  # the collection's top_k
    first = out["messages"][0]
    assert first["role"] == "system" and "[1] Budgets are checked" in first["content"]
    assert "[2] LiveUsage follows" in first["content"]
    assert out["messages"][1:] == event["messages"]  # the conversation itself is unchanged
    assert out["metadata"]["rag"] == "kb:2" and out["metadata"]["guard.pii"] == "redact:EMAIL"
    assert chunk_refs(out["metadata"]) == [
        {"collection": "kb", "doc_id": "doc0.md", "doc_version": 7, "chunk_id": "c0"},
        {"collection": "kb", "doc_id": "doc1.md", "doc_version": 7, "chunk_id": "c1"}]
    assert event["messages"][0]["content"] == "be brief"  # the input event is not mutated


def test_a_team_that_may_not_read_the_collection_is_rejected_and_audited() -> None:
    retriever = Passages(["secret runbook"])
    for team in ("marketing", "research"):
        result = with_context(_event(team=team, tags={"rag": "kb"}), retriever, _policy(kb=KB), scan_pii)
        assert result.event is None and result.rejection is not None
        assert result.rejection.reason_code == "rag_denied" and result.rejection.audit
    assert retriever.asked == []  # nothing was even retrieved for them
    for team in ("support", "search"):  # the owner and a reader
        assert with_context(_event(team=team, tags={"rag": "kb"}), retriever, _policy(kb=KB),
                            scan_pii).event is not None


def test_an_undeclared_collection_is_refused_but_the_docs_are_open() -> None:
    retriever = Passages(["x"])
    unknown = with_context(_event(tags={"rag": "wiki"}), retriever, _policy(), scan_pii)
    assert unknown.rejection is not None and unknown.rejection.reason_code == "rag_denied"
    assert with_context(_event(tags={"rag": "docs"}), retriever, _policy(), scan_pii).event is not None


def test_retrieved_pii_is_redacted_before_it_reaches_a_provider() -> None:
    retriever = Passages(["Call Jane at jane.doe@example.com about the refund.", "No PII here."])
    result = with_context(_event(tags={"rag": "kb"}), retriever, _policy(kb=KB), scan_pii)
    assert result.event is not None
    context = result.event["messages"][0]["content"]
    assert "jane.doe@example.com" not in context and "<EMAIL_1>" in context
    [verdict] = result.verdicts
    assert verdict["stage"] == "context" and verdict["entities"][0]["type"] == "EMAIL"


def test_a_passage_with_an_entity_the_team_must_not_send_is_left_out() -> None:
    base = _policy(kb=KB)
    team = base.teams["support"].model_copy(update={"pii": {"EMAIL": "block"}})
    policy = base.model_copy(update={"teams": {**base.teams, "support": team}})
    retriever = Passages(["Mail jane.doe@example.com", "Refunds take 5 days."])
    result = with_context(_event(tags={"rag": "kb"}), retriever, policy, scan_pii)
    assert result.event is not None
    refs = json.loads(result.event["metadata"]["rag.chunks"])
    assert [r[3] for r in refs] == ["c1"] and "jane" not in result.event["messages"][0]["content"]
    assert result.verdicts[0]["action"] == "block"


def test_nothing_found_leaves_the_request_as_it_was() -> None:
    event = _event(tags={"rag": "kb"})
    assert with_context(event, Passages([]), _policy(kb=KB), scan_pii).event is event
