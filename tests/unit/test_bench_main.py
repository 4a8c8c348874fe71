"""`python -m bench NAME`: a benchmark that takes options runs with its defaults when given none."""

from __future__ import annotations

import sys
import types

import pytest

import bench.__main__ as runner


def test_a_benchmark_with_options_is_not_given_this_process_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    seen: list[int] = []

    def main(argv: list[str] | None = None) -> None:
        parser = argparse.ArgumentParser()
        parser.add_argument("--requests", type=int, default=7)
        seen.append(parser.parse_args(argv).requests)

    module = types.ModuleType("fake_bench")
    module.main = main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_bench", module)
    monkeypatch.setitem(runner.BENCHMARKS, "fake", ("fake_bench", "a benchmark with options"))
    monkeypatch.setattr(sys, "argv", ["python -m bench", "fake"])  # what argparse would read by default
    runner.main(["fake"])
    runner.main(["fake", "--requests", "3"])
    assert seen == [7, 3]
