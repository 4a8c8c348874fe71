"""Answer caches consulted before dispatch."""

from gateway_consumer.cache.exact import CachedAnswer, ExactCache, cache_key

__all__ = ["CachedAnswer", "ExactCache", "cache_key"]
