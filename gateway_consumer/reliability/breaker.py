"""A circuit breaker per provider/model: closed -> open on a high error rate -> half-open probe -> closed.

Open means calls are not even attempted: the request falls over to its next target at once instead of
waiting for a timeout on a provider known to be failing.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum

from streamgate.config import BreakerSettings


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(self, settings: BreakerSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings, self._clock = settings, clock
        self._outcomes: deque[bool] = deque(maxlen=settings.window)
        self._state = State.CLOSED
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> State:
        if self._state is State.OPEN and self._clock() - self._opened_at >= self._settings.open_s:
            self._state = State.HALF_OPEN
        return self._state

    def allow(self) -> bool:
        """May a call go to this target now? In half-open, exactly one probe at a time."""
        state = self.state
        if state is State.CLOSED:
            return True
        if state is State.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def record(self, ok: bool) -> None:
        if self._state is State.HALF_OPEN:
            self._probing = False
            if ok:
                self._state = State.CLOSED
                self._outcomes.clear()
            else:
                self._open()
            return
        self._outcomes.append(ok)
        failures = self._outcomes.count(False)
        if (len(self._outcomes) >= self._settings.min_calls
                and failures / len(self._outcomes) >= self._settings.error_rate):
            self._open()

    def _open(self) -> None:
        self._state, self._opened_at = State.OPEN, self._clock()
        self._outcomes.clear()


class Breakers:
    """One breaker per (provider, model), created on first use."""

    def __init__(self, settings: BreakerSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings, self._clock = settings, clock
        self._by_target: dict[tuple[str, str], CircuitBreaker] = {}

    def get(self, provider: str, model: str) -> CircuitBreaker:
        key = (provider, model)
        if key not in self._by_target:
            self._by_target[key] = CircuitBreaker(self._settings, self._clock)
        return self._by_target[key]

    def states(self) -> dict[str, str]:
        return {f"{p}/{m}": b.state.value for (p, m), b in self._by_target.items()}
