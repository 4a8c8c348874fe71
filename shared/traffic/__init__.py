"""Synthetic traffic: the request workload and telemetry events that demo, benchmarks, chaos and tests
share."""
