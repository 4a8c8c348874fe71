"""Guardrails every stage applies: PII detection and redaction, content rules, verdict events."""
