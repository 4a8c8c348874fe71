"""Answers sent to callers before the commit are acknowledged by the broker before that commit.

The dispatcher's transaction must not commit ahead of the answers its callers read on `replies`
(sent outside it): after the commit the request is never redone, so an answer still queued in the
reply producer when the process is killed would be lost to its caller (it happened: 116 of 4,000
callers in the fused kill test). The commit thread waits on `Replies.wait_delivered`, whose delivery
reports the loop thread serves; this checks that hand-over on the real broker.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

from gateway_consumer.dispatch.replies import Replies
from schemas.topics import Topic
from streamgate.config import Settings
from streamgate.kafka.clients import reply_consumer_config

pytestmark = [pytest.mark.kafka]
ANSWERS = 50


def _in_log(settings: Settings, topic: str) -> int:
    client_id = f"order-{uuid.uuid4().hex[:6]}"
    consumer = Consumer(reply_consumer_config(settings, client_id=client_id, role="admin")
                        | {"isolation.level": "read_uncommitted"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    seen, deadline = 0, time.monotonic() + 10
    while seen < ANSWERS and time.monotonic() < deadline:
        seen += sum(1 for m in consumer.consume(100, timeout=0.5) if m.error() is None)
    consumer.close()
    return seen


def test_a_commit_waits_until_its_answers_are_acknowledged(settings: Settings,
                                                           topics: dict[str, str]) -> None:
    names = {Topic.REPLIES: topics["replies"], Topic.REPLY_CHUNKS: topics["replies.chunks"]}
    replies = Replies(settings, names, "test-reply-order")
    try:
        for i in range(ANSWERS):  # no event loop: each sent at once
            replies.answer(f"answer {i}".encode(), f"request-{i}".encode(), 0)
        replies.answer(b"x" * 2_000_000, b"too-large", 0)  # refused by the producer: nothing to wait for
        mark = replies.mark()
        assert mark == {0: ANSWERS}
        # nobody serves the delivery reports yet: a commit waiting on them would not go ahead
        assert not replies.wait_delivered(mark, 0.5)
        done: dict[str, bool] = {}
        commit = threading.Thread(target=lambda: done.update(ok=replies.wait_delivered(mark, 20)))
        commit.start()
        while commit.is_alive():  # the dispatcher's loop thread polls; the commit thread wakes
            replies.poll()
            time.sleep(0.001)
        assert done == {"ok": True}
        assert replies.reported(mark) and replies.undelivered == 1
        assert _in_log(settings, topics["replies"]) == ANSWERS
    finally:
        replies.close()
