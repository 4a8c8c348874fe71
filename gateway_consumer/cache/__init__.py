"""Answer caches consulted before dispatch, and the semantic cache's default decision."""

from gateway_consumer.cache.exact import CachedAnswer, ExactCache, cache_key
from gateway_consumer.cache.match import semantic_match

__all__ = ["CachedAnswer", "ExactCache", "cache_key", "semantic_match"]
