"""The gateway consumer: dispatch routed requests to providers and emit responses and telemetry.

Folders follow the flow: `providers/` (one adapter per API), `reliability/` (retry, circuit breaker),
`cache/` (exact answers), `answer.py` (one request through its fallback chain), `dispatch/` (the Kafka
loop with transactional commits) and `simulator/` (the OpenAI-compatible test provider).
"""
