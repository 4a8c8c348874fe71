"""Prometheus metrics and a health endpoint, shared by every long-running component."""

from streamgate.observability.health import Heartbeat, serve_metrics
from streamgate.observability.metrics import CountExport, kafka_lag_stats

__all__ = ["CountExport", "Heartbeat", "kafka_lag_stats", "serve_metrics"]
