"""A caller's answer the producer refuses is counted in the exported errors, not only logged."""

from __future__ import annotations

from pathlib import Path

from gateway_consumer.dispatch.replies import Replies
from schemas.topics import Topic
from streamgate.config import Settings
from streamgate.observability.metrics import ERRORS


def _refused() -> float:
    return float(ERRORS.labels("dispatcher", "dispatch", "reply_undelivered")._value.get())


def test_an_answer_too_large_to_send_is_counted_as_undelivered(tmp_path: Path) -> None:
    settings = Settings.model_validate({"state_dir": str(tmp_path), "kafka": {
        "bootstrap_servers": "127.0.0.1:9", "security": {"protocol": "PLAINTEXT"}}})
    topics = {Topic.REPLIES: "t.replies", Topic.REPLY_CHUNKS: "t.replies.chunks"}
    replies = Replies(settings, topics, "test-replies")
    before = _refused()
    # no event loop: sent at once; over the producer's message.max.bytes, so refused before any broker
    replies.answer(b"x" * 2_000_000, b"request-1", 0)
    replies.answer(b"fits", b"request-2", 0)
    assert replies.undelivered == 1
    assert _refused() - before == 1
