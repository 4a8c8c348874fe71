"""`python -m bench [name ...] [options]`: run benchmarks (all by default) and record their results.

Options after the names go to the one benchmark named (`python -m bench gateway --quick`); a benchmark
takes options when its `main` accepts an argument list (`python -m bench.<module> --help` lists them).
"""

from __future__ import annotations

import importlib
import inspect
import sys

#: name -> (module, what it measures); `streamgate bench --help` lists these
BENCHMARKS: dict[str, tuple[str, str]] = {
    "codec": ("bench.codec", "Avro codec and client send throughput vs bare fastavro / produce"),
    "request-path": ("bench.request_path", "request-path throughput: stage logic, full path through Kafka"),
    "pii": ("bench.pii", "PII scanner accuracy and speed vs Microsoft Presidio"),
    "dispatch": ("bench.dispatch", "dispatcher throughput, added latency, memory with 2,000 in flight"),
    "pipeline": ("bench.pipeline", "whole pipeline, shipped defaults: highest paced rate with p99 <= 100 ms"),
    "latency": ("bench.latency", "client send -> answer readable, per hop, at paced rates"),
    "semantic-cache": ("bench.semantic_cache", "semantic cache precision/recall, hit rate and cost"),
    "aggregation": ("bench.aggregation", "aggregation throughput and enforcement lag"),
    "sink": ("bench.sink", "bronze Delta sink throughput vs a plain write_deltalake"),
    "object-store": ("bench.object_store", "Delta commits on the local S3 server (MinIO) vs the local disk"),
    "query": ("bench.query", "analyst SQL over the Delta tables: which engine answers"),
    "gold": ("bench.gold", "gold rebuilds and queries over 10 million bronze rows"),
    "observability": ("bench.observability", "cost of metrics on the hot paths, scrapes, the report"),
    "features": ("bench.features", "feature freshness, online read latency, RAG retrieval quality"),
    "rag": ("bench.rag", "RAG collections: nDCG@10/recall@5 hybrid vs BM25 vs vectors, freshness, ingest, "
            "latency at 1M chunks (options: --beir DIR, --scale N; see `python -m bench.rag --help`)"),
    "rag-scale": ("bench.rag_scale", "RAG retrieval latency by store and size: SQLite (exact) vs "
                  "PostgreSQL + pgvector (HNSW) (options: --sizes, --queries, --stores)"),
    "broker-cost": ("bench.broker_cost", "broker CPU per transaction vs per plain produce, and idle"),
    "security": ("bench.security", "request-path and dispatch throughput: SASL/SCRAM + ACLs vs plaintext"),
    "backtest": ("bench.backtest", "policy backtest of 1,000,000 recorded requests vs per-event decisions "
                 "(options: --requests, --pool)"),
    "gateway": ("bench.gateway", "client latency and max rate: direct vs streamgate vs LiteLLM vs Portkey "
                "(options: --quick, --paths, ...; see `python -m bench.gateway --help`)"),
}


def split(argv: list[str]) -> tuple[list[str], list[str]]:
    """Leading names, then the options (everything from the first argument starting with '-')."""
    first = next((i for i, a in enumerate(argv) if a.startswith("-")), len(argv))
    return argv[:first], argv[first:]


def main(argv: list[str]) -> None:
    names, options = split(argv)
    names = names or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}")
    modules = {n: importlib.import_module(BENCHMARKS[n][0]) for n in names}
    if options and (len(names) != 1 or not inspect.signature(modules[names[0]].main).parameters):
        raise SystemExit(f"options {options} need exactly one benchmark that takes options (e.g. gateway)")
    for name, module in modules.items():
        print(f"== {name}")
        if options:
            module.main(options)
        elif "argv" in inspect.signature(module.main).parameters:
            module.main([])  # its defaults: argparse would otherwise read this process's own argv
        else:
            module.main()


if __name__ == "__main__":
    main(sys.argv[1:])
