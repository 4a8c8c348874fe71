"""gateway_consumer: see README (planned)."""
