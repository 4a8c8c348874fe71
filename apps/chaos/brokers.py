"""Broker faults on a local cluster (`streamgate chaos --brokers 3`): kill -9 of the broker that leads the
most partitions of `requests` and `responses`, its restart, and a rolling restart of every broker.

They run in a thread of their own, one after the other, so the workload keeps flowing (and the harness
keeps polling answers) while a broker is down or restarting: that is what the run is about. After each
restart the thread waits until no partition is under-replicated, as an operator's rolling restart does
before it touches the next broker, and records how long that took.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from schemas.topics import Topic, physical_name
from streamgate.config import Settings
from streamgate.kafka.health import cluster_health
from streamgate.kafka.launcher import LocalKafka

#: Topics whose partition leaders decide which broker the run kills.
LEADER_TOPICS = (Topic.REQUESTS, Topic.RESPONSES)
#: How long the killed broker stays down before its restart: past the controller's session timeout
#: (9 s), so its partitions really move to other leaders and their ISRs shrink.
DOWN_S = 12.0
REPLICATION_TIMEOUT_S = 180.0


@dataclass
class BrokerFaultLog:
    """What the broker faults did and measured, for the report."""

    #: (what, seconds until no partition was under-replicated or offline, from the broker's restart)
    replicated: list[tuple[str, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def leader_of_most(settings: Settings) -> tuple[int, int]:
    """(broker id, partitions it leads) of the broker leading the most `requests`/`responses` partitions."""
    names = [physical_name(t, settings.kafka.topic_prefix) for t in LEADER_TOPICS]
    [(broker, count)] = cluster_health(settings).leaders(names).most_common(1)
    return broker, count


def wait_fully_replicated(settings: Settings, timeout_s: float = REPLICATION_TIMEOUT_S) -> float:
    """Seconds until every partition has its full ISR and a leader; raises TimeoutError past `timeout_s`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        try:
            if cluster_health(settings).fully_replicated:
                return time.monotonic() - t0
        except Exception:  # a metadata request during an election may fail: ask again
            pass
        time.sleep(0.5)
    raise TimeoutError(f"partitions still under-replicated after {timeout_s:.0f} s")


class BrokerFaults:
    """Runs `kill_at_s` (kill -9 of the busiest leader, restart after DOWN_S) and `rolling_at_s` (every
    broker restarted in turn, the active controller last) in a background thread."""

    def __init__(self, settings: Settings, note: Callable[[str], None], kill_at_s: float | None,
                 rolling_at_s: float | None) -> None:
        self.settings, self.note = settings, note
        self.cluster = LocalKafka(settings)
        self.kill_at_s, self.rolling_at_s = kill_at_s, rolling_at_s
        self.log = BrokerFaultLog()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    def start(self, t0: float) -> None:
        self._t0 = t0
        self._thread = threading.Thread(target=self._run, name="chaos-brokers", daemon=True)
        self._thread.start()

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout_s: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _sleep_until(self, at_s: float) -> None:
        time.sleep(max(0.0, self._t0 + at_s - time.monotonic()))

    def _run(self) -> None:
        try:
            if self.kill_at_s is not None:
                self._sleep_until(self.kill_at_s)
                self._kill_leader()
            if self.rolling_at_s is not None:
                self._sleep_until(self.rolling_at_s)
                self._rolling_restart()
        except Exception as exc:  # reported, and the run fails on it
            self.log.errors.append(f"{type(exc).__name__}: {exc}")
            self.note(f"[red]broker fault failed[/]: {exc}")

    def _kill_leader(self) -> None:
        broker, leads = leader_of_most(self.settings)
        killed = time.monotonic()
        self.cluster.stop_node(broker, hard=True)
        self.note(f"kill -9 broker {broker} (leader of {leads} requests/responses partitions)")
        time.sleep(DOWN_S)
        fenced = self._wait_fenced(broker)
        self.note(f"broker {broker} out of the cluster {fenced - killed:.1f} s after the kill; "
                  f"requests/responses leaders per broker {self._leaders()}")
        t0 = time.monotonic()
        self.cluster.start_node(broker)
        self.note(f"broker {broker} restarted, rejoined after {time.monotonic() - t0:.1f} s")
        self._replicated(f"kill -9 broker {broker}", t0)

    def _wait_fenced(self, broker: int, timeout_s: float = 60.0) -> float:
        """When the controller has fenced the dead broker (its leaderships moved, its replicas out of
        the ISRs): only then is the restart a recovery rather than a blip."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if broker not in cluster_health(self.settings).brokers:
                    break
            except Exception:  # an election in progress
                pass
            time.sleep(0.5)
        return time.monotonic()

    def _leaders(self) -> dict[int, int]:
        names = [physical_name(t, self.settings.kafka.topic_prefix) for t in LEADER_TOPICS]
        try:
            return dict(sorted(cluster_health(self.settings).leaders(names).items()))
        except Exception:
            return {}

    def _rolling_restart(self) -> None:
        controller = self.cluster.active_controller()
        order = sorted((n.node_id for n in self.cluster.nodes), key=lambda n: (n == controller, n))
        self.note(f"rolling restart of brokers {order} (active controller {controller} last)")
        started = time.monotonic()
        for broker in order:
            self.cluster.stop_node(broker)
            t0 = time.monotonic()
            self.cluster.start_node(broker)
            self._replicated(f"rolling restart, broker {broker}", t0)
        self.note(f"rolling restart done in {time.monotonic() - started:.1f} s")

    def _replicated(self, what: str, restarted_at: float) -> None:
        wait_fully_replicated(self.settings)
        took = time.monotonic() - restarted_at
        self.log.replicated.append((what, took))
        self.note(f"fully replicated again {took:.1f} s after the restart ({what})")
