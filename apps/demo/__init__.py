"""The end-to-end demo: a workload generator and the runner that drives every stage."""
