"""`bench pipeline` builds a step's requests before the step and stamps each as it sends it: the
caller's clock starts at the send, and a request with a deadline keeps as long to live as it was given."""

from __future__ import annotations

from bench.pipeline import _stamped
from shared.traffic import workload


def test_a_stamped_request_is_created_at_its_send_time_and_keeps_its_time_to_live() -> None:
    built = list(workload.requests(400, seed=3, run_id="stamp"))
    with_deadline = next(r for r in built if r.deadline_at_ms is not None)
    without = next(r for r in built if r.deadline_at_ms is None)
    sent_at = with_deadline.created_at_ms + 90_000  # built long before it is sent

    stamped = _stamped(with_deadline, sent_at)
    assert stamped.created_at_ms == sent_at
    assert stamped.deadline_at_ms is not None and with_deadline.deadline_at_ms is not None
    assert stamped.deadline_at_ms - sent_at == with_deadline.deadline_at_ms - with_deadline.created_at_ms
    assert stamped.to_event()["deadline_at"] == stamped.deadline_at_ms  # what goes on the wire
    assert (stamped.request_id, stamped.messages) == (with_deadline.request_id, with_deadline.messages)

    plain = _stamped(without, sent_at)
    assert (plain.created_at_ms, plain.deadline_at_ms) == (sent_at, None)
