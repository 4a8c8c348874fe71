"""`streamgate rag ...`: teams' document collections for RAG (features/collections/)."""

from __future__ import annotations

from pathlib import Path

import typer

from apps.cli.common import ConfigOption, MetricsPortOption, fail, settings_or_exit

app = typer.Typer(help="Document collections for RAG: create, ingest, index, search.", no_args_is_help=True)
PolicyOption = typer.Option(Path("config/gateway.yaml"), "--policy", help="The gateway policy file.")


@app.command()
def create(
    name: str = typer.Argument(..., help="Collection name (lowercase letters, digits, - and _)."),
    owner: str = typer.Option(..., help="The owning team (in the policy's teams)."),
    readers: str = typer.Option("", help="Comma-separated other teams that may read it ('*': all)."),
    description: str = typer.Option("", help="What it holds."),
    chunk_chars: int = typer.Option(900, help="Longest chunk, in characters."),
    top_k: int = typer.Option(3, help="Passages added to a tagged request."),
    policy: Path = PolicyOption,
    publish: bool = typer.Option(True, help="Publish the new policy to the config topic (running workers "
                                 "pick it up); --no-publish only edits the file."),
    config: Path | None = ConfigOption,
) -> None:
    """Declare a collection in the gateway policy (owner, readers, chunking), as a new policy version."""
    from features.collections.registry import add_collection
    from shared.policy.config import PolicyConfigError, RagCollection
    from shared.policy.publish import publish_policy

    settings = settings_or_exit(config)
    try:
        spec = RagCollection(owner=owner, readers=[r.strip() for r in readers.split(",") if r.strip()],
                             description=description, chunk_chars=chunk_chars, top_k=top_k)
        new = add_collection(policy, name, spec)
    except (PolicyConfigError, ValueError) as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"collection {name} added to {policy}: policy version {new.version}")
    if publish:
        publish_policy(settings, policy)
        typer.echo("published to the config topic")


@app.command()
def ingest(
    collection: str = typer.Argument(...),
    paths: list[Path] = typer.Argument(..., help="Files or folders (.md, .txt, .html, .pdf)."),
    version: int | None = typer.Option(None, help="Document version (default: each file's mtime in ms)."),
    config: Path | None = ConfigOption,
) -> None:
    """Send documents to the `documents` topic; the RAG worker indexes them."""
    from features.collections.extract import UnsupportedFileError
    from features.collections.ingest import ingest as send

    try:
        sent = send(settings_or_exit(config), collection, paths, version=version)
    except (UnsupportedFileError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    for s in sent:
        typer.echo(f"{s.doc_id}  v{s.version}  {s.chars} chars")
    typer.echo(f"{len(sent)} documents sent to {collection}")


@app.command()
def delete(
    collection: str = typer.Argument(...),
    doc_ids: list[str] = typer.Argument(..., help="Document ids, as ingested."),
    config: Path | None = ConfigOption,
) -> None:
    """Retract documents: their chunks leave the index and the chunks table."""
    import time

    from features.collections.ingest import DocumentProducer, document_event

    producer = DocumentProducer(settings_or_exit(config))
    for doc_id in doc_ids:
        producer.send(document_event(collection, doc_id, int(time.time() * 1000), deleted=True))
    producer.flush()
    typer.echo(f"{len(doc_ids)} deletions sent to {collection}")


@app.command()
def worker(
    instance: str = typer.Option("0", help="Stable id of this indexer (its group member id)."),
    metrics_port: int | None = MetricsPortOption,
    config: Path | None = ConfigOption,
) -> None:
    """Chunk, embed and index the documents topic into Delta and the online store, exactly once."""
    from features.collections.worker import run_indexer

    run_indexer(settings_or_exit(config), instance=instance, metrics_port=metrics_port)


@app.command()
def search(
    collection: str = typer.Argument(...),
    question: str = typer.Argument(...),
    team: str | None = typer.Option(None, help="Search as this team: refused if it may not read it."),
    top_k: int = typer.Option(5, "--top-k"),
    mode: str = typer.Option("hybrid", help="hybrid, vector or bm25."),
    policy: Path = PolicyOption,
    config: Path | None = ConfigOption,
) -> None:
    """The passages of a collection closest to a question."""
    from features.collections.indexer import open_online
    from features.collections.retriever import CollectionRetriever
    from shared.embeddings.minilm import MiniLM
    from shared.policy.config import load_policy
    from streams.route.context import may_read

    settings = settings_or_exit(config)
    if team is not None and (denied := may_read(load_policy(policy), collection, team)) is not None:
        raise fail(f"rag_denied: {denied.message}")
    if mode not in ("hybrid", "vector", "bm25"):
        raise fail("--mode is hybrid, vector or bm25")
    retriever = CollectionRetriever(open_online(settings),
                                    MiniLM(settings.dispatch.cache.semantic.model_dir))
    for hit in retriever.search(collection, question, top_k, mode):  # type: ignore[arg-type]
        typer.echo(f"{hit.score:8.4f}  {hit.doc_id} v{hit.version} #{hit.chunk_id}\n          "
                   f"{hit.text[:200]!r}")


@app.command()
def demo(config: Path | None = ConfigOption) -> None:
    """A team registers a collection, feeds it through the topic; it is served to that team only."""
    from apps.demo.rag import RagDemoError, run_rag_demo

    try:
        run_rag_demo(settings_or_exit(config))
    except RagDemoError as exc:
        raise fail(f"rag demo failed: {exc}") from exc
