"""Retry timing and circuit breaking: pure logic with an injectable clock, unit-tested without I/O."""

from gateway_consumer.reliability.backoff import retry_delay_s
from gateway_consumer.reliability.breaker import Breakers, CircuitBreaker

__all__ = ["Breakers", "CircuitBreaker", "retry_delay_s"]
