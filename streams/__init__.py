"""streams: see README (planned)."""
