"""`streamgate features ...`: the Feast feature store over the lakehouse (features/)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer

from apps.cli.common import ConfigOption, settings_or_exit

app = typer.Typer(help="The Feast feature store: apply, materialize, push, serve, training sets, RAG.",
                  no_args_is_help=True)


@app.command("apply")
def apply_cmd(config: Path | None = ConfigOption) -> None:
    """Create the feature tables if missing and register every definition (features/definitions.py)."""
    from features.store import apply, write_config

    settings = settings_or_exit(config)
    _, defs = apply(settings)
    typer.echo(f"applied {len(defs.objects())} objects; repo config {write_config(settings)}")


@app.command()
def materialize(
    days: float = typer.Option(3.0, help="Load feature rows from this many days back into the online store."),
    config: Path | None = ConfigOption,
) -> None:
    """Rebuild the daily feature tables from gold, then load recent rows into the online store."""
    from features.store import apply
    from features.tables import build_from_gold

    settings = settings_or_exit(config)
    built = build_from_gold(settings)
    store, _ = apply(settings)
    now = datetime.now(UTC)
    store.materialize(now - timedelta(days=days), now)
    typer.echo(f"from gold: {built}; materialized {days:g} days up to {now:%Y-%m-%d %H:%M:%S}")


@app.command()
def push(config: Path | None = ConfigOption) -> None:
    """Run the push worker: usage.aggregates -> Feast push sources (online) and feature tables."""
    from features.push import run_worker

    run_worker(settings_or_exit(config))


@app.command("training-set")
def training_set(config: Path | None = ConfigOption) -> None:
    """Silver requests joined point-in-time with their features -> Delta table ml/request_latency."""
    from features.training import build_training_set

    path, rows = build_training_set(settings_or_exit(config))
    typer.echo(f"{rows} rows -> {path}")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(6566),
    config: Path | None = ConfigOption,
) -> None:
    """Feast's feature server (HTTP: /get-online-features, /push, /health) over this store."""
    import uvicorn
    from feast.feature_server import get_app

    from features.store import open_store

    settings = settings_or_exit(config)
    uvicorn.run(get_app(open_store(settings), settings.features.registry_ttl_s), host=host, port=port,
                access_log=False)


@app.command()
def online(
    view: str = typer.Argument(..., help="provider_health, team_usage, key_usage, team_daily, ..."),
    key: str = typer.Argument(..., help="The entity value: 'openai/gpt-4o-mini', a team, a key hash."),
    config: Path | None = ConfigOption,
) -> None:
    """Read one entity's online features."""
    from features.definitions import build
    from features.store import open_store

    settings = settings_or_exit(config)
    fv = getattr(build(settings), view, None)
    if fv is None or not hasattr(fv, "features"):
        raise typer.BadParameter(f"unknown feature view {view!r}")
    join_key = fv.entity_columns[0].name
    got = open_store(settings).get_online_features([f"{view}:{f.name}" for f in fv.features],
                                                   [{join_key: key}]).to_dict()
    typer.echo(json.dumps({k: v[0] for k, v in got.items()}, default=str, indent=2))


@app.command("index-docs")
def index_docs(config: Path | None = ConfigOption) -> None:
    """Chunk and embed README.md and docs/*.md into the doc_chunks view (vector search)."""
    from features.rag import index_docs as index
    from features.store import apply

    settings = settings_or_exit(config)
    store, _ = apply(settings)
    typer.echo(f"{index(settings, store)} chunks indexed")


@app.command()
def retrieve(
    question: str = typer.Argument(...),
    top_k: int = typer.Option(5, "--top-k"),
    config: Path | None = ConfigOption,
) -> None:
    """The doc chunks closest to a question (run `index-docs` first)."""
    from features.rag import retrieve as search
    from features.store import open_store
    from shared.embeddings.minilm import MiniLM

    settings = settings_or_exit(config)
    hits = search(open_store(settings), MiniLM(settings.dispatch.cache.semantic.model_dir), question, top_k)
    for hit in hits:
        typer.echo(f"{hit.distance:.3f}  {hit.source}\n       {hit.text[:160]!r}")
