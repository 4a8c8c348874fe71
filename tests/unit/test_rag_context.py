"""RAG context in the request path: only tagged requests change, and only by one leading system message."""

from __future__ import annotations

from typing import Any

from streams.route.context import with_context


class Passages:
    def __init__(self, found: list[str]) -> None:
        self.found, self.asked = found, []

    def passages(self, collection: str, question: str) -> list[str]:
        self.asked.append((collection, question))
        return self.found


def _event(**over: Any) -> dict[str, Any]:
    return {"messages": [{"role": "system", "content": "be brief", "name": None},
                         {"role": "user", "content": "first", "name": None},
                         {"role": "assistant", "content": "ok", "name": None},
                         {"role": "user", "content": "how are budgets enforced?", "name": None}],
            "tags": {}, "metadata": {"guard.pii": "redact:EMAIL"}} | over


def test_untagged_requests_are_left_alone() -> None:
    retriever = Passages(["a passage"])
    event = _event()
    assert with_context(event, retriever) is event and retriever.asked == []
    tagged = _event(tags={"rag": "docs"})
    assert with_context(tagged, None) is tagged  # no retriever configured: the tag is ignored


def test_tagged_request_gets_passages_for_its_last_question() -> None:
    retriever = Passages(["Budgets are checked against ...", "LiveUsage follows ..."])
    event = _event(tags={"rag": "docs"})
    out = with_context(event, retriever)
    assert retriever.asked == [("docs", "how are budgets enforced?")]
    first = out["messages"][0]
    assert first["role"] == "system" and "[1] Budgets are checked" in first["content"]
    assert "[2] LiveUsage follows" in first["content"]
    assert out["messages"][1:] == event["messages"]  # the conversation itself is unchanged
    assert out["metadata"] == {"guard.pii": "redact:EMAIL", "rag": "docs:2"}
    assert event["messages"][0]["content"] == "be brief"  # the input event is not mutated


def test_nothing_found_leaves_the_request_as_it_was() -> None:
    event = _event(tags={"rag": "wiki"})
    assert with_context(event, Passages([])) is event
