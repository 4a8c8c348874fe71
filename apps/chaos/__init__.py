"""`streamgate chaos`: faults while the workload runs, then invariants that prove nothing was lost."""

#: The kinds of component a run kills with -9 (the names `Components` starts them under).
#: `gateway-worker` is the fused deployment's (`streams.deployment: fused`, the default), which runs instead
#: of `streams-worker` and `dispatcher`; a run kills what its deployment runs (apps/chaos/run.py).
WORKERS = ("gateway-worker", "streams-worker", "dispatcher", "aggregator", "lakehouse-sink")
KILLABLE = (*WORKERS, "simulator")
