"""The Feast feature store over the lakehouse: definitions, the push worker, the gateway's readers,
training sets and RAG (docs/features.md)."""
