# The two commands of the README's Quick start are `make demo` and `make test`; both set up first.
.PHONY: setup demo test lint typecheck unit bench clean-state

setup:
	@bash scripts/bootstrap.sh

demo: setup
	.venv/bin/streamgate demo

lint:
	.venv/bin/ruff check .

typecheck:
	.venv/bin/mypy

unit: setup
	.venv/bin/pytest tests/unit -q

test: setup lint typecheck
	.venv/bin/pytest -q

bench: setup
	$(HOME)/.cache/streamgate/tools/bin/uv sync --group bench --group spark --quiet || uv sync --group bench --group spark --quiet
	.venv/bin/streamgate bench
