"""The Kafka side of the gateway consumer: the dispatch loop and its exactly-once bookkeeping."""

from gateway_consumer.dispatch.loop import Dispatcher, DispatchStats

__all__ = ["DispatchStats", "Dispatcher"]
