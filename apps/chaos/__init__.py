"""`streamgate chaos`: faults while the workload runs, then invariants that prove nothing was lost."""

#: The kinds of component a run kills with -9 (the names `Components` starts them under).
WORKERS = ("streams-worker", "dispatcher", "aggregator", "lakehouse-sink")
KILLABLE = (*WORKERS, "simulator")
