"""Benchmarks: each compares streamgate against a baseline measured in the same run, as a ratio."""
