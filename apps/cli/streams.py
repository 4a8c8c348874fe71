"""`streamgate streams`: the request-path stream processors."""

from __future__ import annotations

import socket
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from apps.cli.common import ConfigOption, MetricsPortOption, settings_or_exit

if TYPE_CHECKING:
    from streamgate.config import Settings
    from streams.pipeline import RequestPathDeps

app = typer.Typer(help="Request path: validation, guardrails, budgets and routing.",
                  no_args_is_help=True)


class Engine(StrEnum):
    transactions = "transactions"
    faust = "faust"


@app.command()
def worker(
    engine: Engine | None = typer.Option(None, help="Override `streams.engine` of the config."),
    instance: str = typer.Option("0", help="transactions engine: this worker's id within the group (its "
                                           "transactional id): give each worker its own, stable across "
                                           "restarts; `{hostname}` is replaced by the host's name."),
    exactly_once: bool = typer.Option(False, "--exactly-once",
                                      help="faust engine: faust's experimental Kafka transactions."),
    web_port: int | None = typer.Option(None, help="faust engine: serve faust's web endpoints here."),
    loglevel: str = typer.Option("warn", help="faust engine: crit | error | warn | info | debug"),
    metrics_port: int | None = MetricsPortOption,
    config: Path | None = ConfigOption,
) -> None:
    """Run one worker; start more to scale (they share partitions as a consumer group)."""
    from streams.worker import run_worker

    settings = settings_or_exit(config)
    if engine is not None:
        settings = settings.model_copy(update={
            "streams": settings.streams.model_copy(update={"engine": engine.value})})
    run_worker(settings, exactly_once=exactly_once, web_port=web_port, loglevel=loglevel,
               metrics_port=metrics_port, instance=instance.format(hostname=socket.gethostname()),
               wire=use_feature_store)


def use_feature_store(settings: Settings, deps: RequestPathDeps) -> None:
    """Read provider health, usage and RAG context from Feast, as configured under `features:`, and the
    teams' collections from their online store (`rag.enabled`)."""
    if settings.rag.enabled:
        use_collections(settings, deps)
    if not ("feast" in (settings.features.health_source, settings.features.usage_source)
            or settings.features.rag):
        return
    from features.serving import feast_health, feast_usage
    from features.store import open_store
    from streams.guardrails.budgets import AdmittedUsage

    store = open_store(settings)  # online features fed by `streamgate features push`
    if settings.features.health_source == "feast":
        deps.health = feast_health(settings, store)
    if settings.features.usage_source == "feast":
        deps.usage = AdmittedUsage(feast_usage(settings, store))
    if settings.features.rag:
        from features.collections.retriever import Retrievers
        from features.rag import DocsRetriever
        from shared.embeddings.minilm import MiniLM

        docs = DocsRetriever(store, MiniLM(settings.dispatch.cache.semantic.model_dir))
        if isinstance(deps.context, Retrievers):
            deps.context.named["docs"] = docs
        else:
            deps.context = docs


def use_collections(settings: Settings, deps: RequestPathDeps) -> None:
    """Requests tagged `rag: <collection>` get passages of the teams' collections (features/collections/)."""
    from threadpoolctl import threadpool_limits

    from features.collections.indexer import open_online
    from features.collections.retriever import CollectionRetriever, Retrievers
    from shared.embeddings.minilm import MiniLM

    threadpool_limits(1)  # one question at a time: a second BLAS thread would only spin against the worker
    retriever = CollectionRetriever(open_online(settings),
                                    MiniLM(settings.dispatch.cache.semantic.model_dir),
                                    mode=settings.rag.retrieval, candidates=settings.rag.candidates)
    deps.context = Retrievers(retriever)

