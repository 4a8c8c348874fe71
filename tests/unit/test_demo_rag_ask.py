"""The demo's RAG questions honour a per-minute refusal as a caller honours a 429's Retry-After: asked
again after the reset, a bounded number of times; other refusals are final at once."""

from __future__ import annotations

from typing import Any

from apps.demo.rag_part import RATE_LIMIT_RETRIES, _ask
from streamgate.client import RequestRejectedError


class _Client:
    """Answers from a script: a Response dict raises as the real client raises a refusal."""

    def __init__(self, *answers: dict[str, Any]) -> None:
        self.answers, self.calls = list(answers), 0

    def chat(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        answer = self.answers.pop(0)
        if answer["status"] != "ok":
            raise RequestRejectedError(answer)
        return answer


def _refused(reason: str, message: str) -> dict[str, Any]:
    return {"request_id": "r", "status": "rejected", "reason_code": reason, "message": message}


LIMITED = _refused("budget_exceeded", "team research: 151 requests per minute over its limit of 150")
OK = {"request_id": "r2", "status": "ok", "rag_chunks": [{"doc_id": "d", "doc_version": 1, "chunk_id": 0}]}


def test_a_per_minute_refusal_is_asked_again_after_the_reset() -> None:
    slept: list[float] = []
    client = _Client(LIMITED, OK)
    asked = _ask(client, "research", "evals", "q", sleep=slept.append)  # type: ignore[arg-type]
    assert (asked.status, asked.request_id, client.calls) == ("ok", "r2", 2) and asked.chunks
    assert len(slept) == 1 and 1 <= slept[0] <= 60


def test_retries_are_bounded_and_other_refusals_are_final() -> None:
    slept: list[float] = []
    client = _Client(*[LIMITED] * (RATE_LIMIT_RETRIES + 1))
    asked = _ask(client, "research", "evals", "q", sleep=slept.append)  # type: ignore[arg-type]
    assert (asked.status, asked.reason) == ("rejected", "budget_exceeded")
    assert client.calls == RATE_LIMIT_RETRIES + 1
    denied = _Client(_refused("rag_denied", "marketing may not read research-notes"))
    refused = _ask(denied, "marketing", "copy", "q", sleep=slept.append)  # type: ignore[arg-type]
    assert refused.reason == "rag_denied"
    assert denied.calls == 1 and len(slept) == RATE_LIMIT_RETRIES
