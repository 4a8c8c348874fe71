"""lakehouse: see README (planned)."""
