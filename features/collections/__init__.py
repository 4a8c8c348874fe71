"""Team document collections for RAG: documents in from the `documents` topic, chunked, embedded and
indexed exactly once into a Delta table and an online store (SQLite + sqlite-vec + FTS5), retrieved with
access control by the request path (streams/route/context.py) and `streamgate rag search`."""
