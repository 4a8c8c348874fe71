"""End the process when a Kafka transaction call outlasts its own timeout.

librdkafka does not always honour the timeout of its transactional calls: after a broker restart,
`send_offsets_to_transaction` stayed blocked for minutes (py-spy during `streamgate chaos`; upstream
confluentinc/librdkafka#5511: a group coordinator cached from before the restart is never looked up
again). Meanwhile the caller's transaction stays open, and every read_committed reader of the topics it
wrote to waits behind it. A thread blocked in C cannot be interrupted or joined, so the only way out is
an immediate exit; the supervisor restarts the process and its `init_transactions` aborts the
transaction, whose work is then redone exactly once.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from confluent_kafka import KafkaError

log = logging.getLogger("streamgate.kafka")
#: Exit status of a process that ended itself this way.
STUCK_EXIT = 3


@contextmanager
def exit_if_stuck(seconds: float, what: str) -> Iterator[None]:
    """Run the block; if it has not finished after `seconds`, log and `os._exit` the process."""
    timer = threading.Timer(seconds, _exit, args=(what, seconds))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _exit(what: str, seconds: float) -> None:
    log.error("%s still blocked after %.0f s; exiting for a restart", what, seconds)
    logging.shutdown()
    os._exit(STUCK_EXIT)


def committed_offsets_unknown(error: KafkaError) -> bool:
    """A consume error saying the group's committed offsets could not be fetched ("Failed to fetch
    committed offsets ...: Not coordinator", right after a broker restart). Seen once in `streamgate
    chaos`: the assigned partitions then never started fetching (no event in 5 minutes). A consumer
    that sees it exits; its restart fetches the offsets again and resumes exactly where it committed."""
    return "committed offsets" in error.str()
