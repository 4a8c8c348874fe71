"""features: see README (planned)."""
