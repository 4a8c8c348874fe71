"""Sentence embeddings (all-MiniLM-L6-v2 run with onnxruntime): the semantic cache and RAG share one model."""
