"""`streamgate bench`: run the benchmarks in bench/ and record their results."""

from __future__ import annotations

import typer

from bench.__main__ import BENCHMARKS

#: options after the names pass through to that benchmark (`streamgate bench gateway --quick`)
CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}
HELP = ("Run benchmarks (default: all); results go to bench/results/<name>.json and docs/benchmarks.md. "
        "Options after one name go to that benchmark, e.g. `streamgate bench gateway --quick`.\n\n"
        + "\n\n".join(f"{name}: {what}" for name, (_, what) in BENCHMARKS.items()))


def run(names: list[str] = typer.Argument(None, help="Benchmarks to run: " + ", ".join(BENCHMARKS)
                                           + " (default: all), then that benchmark's options.")) -> None:
    from bench.__main__ import main

    main(list(names or []))
