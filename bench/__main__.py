"""`python -m bench [name ...]`: run benchmarks (all by default) and record their results."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {"codec": "bench.codec", "request-path": "bench.request_path", "pii": "bench.pii",
              "dispatch": "bench.dispatch", "latency": "bench.latency",
              "semantic-cache": "bench.semantic_cache", "aggregation": "bench.aggregation",
              "sink": "bench.sink", "query": "bench.query",
              "gold": "bench.gold", "observability": "bench.observability", "features": "bench.features"}


def main(argv: list[str]) -> None:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}")
    for name in names:
        print(f"== {name}")
        importlib.import_module(BENCHMARKS[name]).main()


if __name__ == "__main__":
    main(sys.argv[1:])
