"""Usage as the aggregator publishes it on `usage.aggregates`: windows, sketches and the live reader."""
