"""`streamgate bench`: run the benchmarks in bench/ and record their results."""

from __future__ import annotations

import typer


def run(names: list[str] = typer.Argument(None, help="Benchmarks to run: codec, request-path, pii "
                                           "(default: all).")) -> None:
    """Run benchmarks; results go to bench/results/<name>.json and docs/benchmarks.md."""
    from bench.__main__ import main

    main(list(names or []))
