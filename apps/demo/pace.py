"""When to send: an even rate over the run, with one short burst at `burst_factor` times that rate.

Pure arithmetic, so the shape of the traffic is tested without a clock: `due(elapsed)` says how many
requests should have been sent by then.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pace:
    count: int
    duration_s: float
    burst_factor: float = 50.0
    #: The burst starts at this share of the run and lasts this share of it.
    burst_at: float = 0.5
    burst_share: float = 0.02

    @property
    def base_rate(self) -> float:
        """Requests per second outside the burst, chosen so that `count` are sent in `duration_s`."""
        weighted = self.duration_s * (1 + (self.burst_factor - 1) * self.burst_share)
        return self.count / weighted

    def burst(self) -> tuple[float, float]:
        start = self.burst_at * self.duration_s
        return start, start + self.burst_share * self.duration_s

    def due(self, elapsed_s: float) -> int:
        if elapsed_s >= self.duration_s:
            return self.count
        start, end = self.burst()
        burst_s = min(max(elapsed_s - start, 0.0), end - start)
        sent = self.base_rate * (elapsed_s - burst_s + self.burst_factor * burst_s)
        return min(self.count, int(sent) + 1)
