"""The request path: validate, guard (PII, content, access, residency, budgets) and route each request
in one pass, exactly once through Kafka transactions (`streams.loop`); faust is an optional engine."""
