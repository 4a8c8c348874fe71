"""The fused gateway worker: the request path and the dispatcher in one process, one Kafka transaction.

The staged deployment (a `streams worker` and a `dispatch worker`) puts two transactions and a
read_committed fetch between a request and its answer; the transaction hop alone is ~4 ms at p50 here
(docs/benchmarks.md, latency). Fused, one process consumes `requests`, decides each with the request
path's own code (`streams.pipeline.RequestPath`) and answers it with the dispatcher's
(`gateway_consumer.dispatch.Dispatcher`); a transaction carries everything a finished request produced.
It lives here, in the composition layer, because a stage may not import another.
"""

from apps.gateway.fused import FusedGateway

__all__ = ["FusedGateway"]
