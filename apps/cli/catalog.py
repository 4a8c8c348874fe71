"""`streamgate catalog`: the model catalog (prices, context windows, regions)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from apps.cli.common import fail
from streamgate.catalog import UnknownModelError, load_catalog

app = typer.Typer(help="The model catalog used for validation, routing and pricing.", no_args_is_help=True)


@app.command()
def refresh(
    from_file: Path | None = typer.Option(None, "--from-file", help="A LiteLLM-format price JSON to use "
                                          "instead of downloading the newest litellm wheel from PyPI."),
) -> None:
    """Rebuild config/catalog/models.csv from the public price list (see streamgate/catalog/refresh.py)."""
    from streamgate.catalog.refresh import refresh as run

    typer.echo(f"catalog: {run(from_file)} models written")


@app.command()
def show(models: list[str] = typer.Argument(None, help="Model ids or provider/model keys.")) -> None:
    """Show catalog entries (or a count when no model is named)."""
    catalog = load_catalog()
    if not models:
        typer.echo(f"{len(catalog)} models from {len(catalog.providers())} providers")
        return
    table = Table()
    for col in ("key", "context", "input $/Mtok", "output $/Mtok", "cached $/Mtok", "regions"):
        table.add_column(col)
    for name in models:
        try:
            m = catalog.get(name)
        except UnknownModelError as exc:
            raise fail(str(exc)) from exc
        table.add_row(m.key, str(m.context_window), str(m.input_usd_per_mtok), str(m.output_usd_per_mtok),
                      str(m.cached_input_usd_per_mtok), ",".join(m.regions))
    Console().print(table)
