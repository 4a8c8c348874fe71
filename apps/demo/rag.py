"""`streamgate rag demo`: a team registers its own collection, feeds it through the documents topic, and
the gateway serves it to that team only, with lineage down to the lakehouse.

1. `research` registers `eng-handbook` (a new policy version, published to the config topic) beside the
   policy's own `support-kb`;
2. the project's README and docs go to the documents topic (`rag ingest`), the RAG worker indexes them;
3. research asks tagged questions (answered with passages; the Response names the chunks and document
   versions), marketing asks the same and is refused `rag_denied` (audited);
4. one document is retracted; the lakehouse answers which answers it had fed (`streamgate query`).
"""

from __future__ import annotations

import shutil
import time

from rich.console import Console
from rich.table import Table

from apps.demo.processes import Components, use_free_metrics_ports
from apps.stack import request_stages, start_infrastructure, start_simulator
from features.collections.indexer import online_path, open_online
from features.collections.ingest import DocumentProducer, document_event, ingest
from features.collections.registry import add_collection
from shared.policy.config import GATEWAY_FILE, GatewayPolicy, RagCollection, load_policy
from shared.policy.publish import publish_policy
from shared.tables.query import run_query
from shared.traffic.workload import provision_keys
from streamgate.client import GatewayClient, RequestRejectedError
from streamgate.config import REPO_ROOT, Settings

COLLECTION = "eng-handbook"
QUESTIONS = ("Which environment variables override the configuration file?",
             "How does the lakehouse sink stay exactly once after a kill -9?",
             "How are API keys stored?")
LINEAGE_SQL = ("select r.request_id, r.team, c['doc_id'] as doc_id, c['doc_version'] as doc_version "
               "from (select request_id, team, unnest(rag_chunks) as c from responses) r "
               "where c['collection'] = '{collection}' and c['doc_id'] = '{doc}'")


class RagDemoError(RuntimeError):
    """The demo could not show what it promises (the component logs say why)."""


def register(settings: Settings, console: Console, name: str, spec: RagCollection) -> GatewayPolicy:
    """Declare `name` in a copy of the policy under the state directory (as `streamgate rag create`
    does to config/gateway.yaml) and publish it: every worker adopts it from the config topic."""
    policy_file = settings.state_dir / "rag-demo-gateway.yaml"
    policy_file.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(GATEWAY_FILE, policy_file)
    policy = add_collection(policy_file, name, spec)
    publish_policy(settings, policy_file, actor="rag-demo")
    readers = ", ".join(spec.readers) or "no other reader"
    console.print(f"[bold]collections[/] {', '.join(policy.rag_collections)} (policy {policy.version}, "
                  f"published); {name}: owner {spec.owner}, {readers}")
    return policy


def _register(settings: Settings, console: Console) -> None:
    register(settings, console, COLLECTION, RagCollection(
        owner="research", description="The gateway's engineering handbook (README and docs/)", top_k=3))


def indexed_chunks(settings: Settings, collection: str) -> tuple[int, int]:
    """(live documents, chunks) of `collection` in the online store, (0, 0) before the store exists."""
    if settings.rag.online_store == "sqlite" and not online_path(settings).exists():
        return 0, 0
    store = open_online(settings)
    try:
        return store.live_docs(collection), store.count(collection)
    finally:
        store.close()


def wait_indexed(settings: Settings, collection: str, docs: int, timeout_s: float = 600) -> int:
    """Chunks of `collection` once its online store holds `docs` live documents."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        indexed, chunks = indexed_chunks(settings, collection)
        if indexed >= docs:
            return chunks
        time.sleep(0.5)
    raise RagDemoError(f"the RAG worker did not index {docs} documents within {timeout_s:.0f} s")


def _ask(settings: Settings, keys: dict[tuple[str, str], str], console: Console) -> list[str]:
    table = Table(title=f"requests tagged rag: {COLLECTION}")
    for col in ("team", "question", "outcome", "passages (document@version)"):
        table.add_column(col)
    answered: list[str] = []
    asks = [("research", "evals", q) for q in QUESTIONS] + [("marketing", "copy", QUESTIONS[0])]
    for team, project, question in asks:
        with GatewayClient(settings, api_key=keys[(team, project)], timeout_s=60) as client:
            try:
                response = client.chat(team=team, project=project, model="gpt-4o-mini",
                                       tags={"rag": COLLECTION},
                                       messages=[{"role": "user", "content": question}])
            except RequestRejectedError as exc:
                table.add_row(team, question, f"[red]rejected[/] {exc}", "")
                continue
        refs = ", ".join(f"{c['doc_id']}@{c['doc_version']}" for c in response.get("rag_chunks") or [])
        table.add_row(team, question, f"[green]{response['status']}[/]", refs)
        answered.extend(c["doc_id"] for c in response.get("rag_chunks") or [])
    console.print(table)
    return answered


def _lineage(settings: Settings, doc: str, console: Console, timeout_s: float = 60) -> None:
    sql = LINEAGE_SQL.format(collection=COLLECTION, doc=doc)
    deadline, rows = time.monotonic() + timeout_s, list[dict[str, object]]()
    while time.monotonic() < deadline and not rows:
        try:
            rows = run_query(settings, sql).to_pylist()
        except Exception:  # the sink has not landed responses (or their table) yet
            rows = []
        if not rows:
            time.sleep(2)
    console.print(f"[bold]lineage[/] answers fed by {doc} (from the lakehouse, `streamgate query`):")
    for row in rows:
        console.print(f"  {row['request_id']}  team {row['team']}  {row['doc_id']}@{row['doc_version']}")
    if not rows:
        raise RagDemoError("no answer in the lakehouse names the retracted document")


def run_rag_demo(settings: Settings, console: Console | None = None) -> None:
    console = console or Console()
    start_infrastructure(settings, console)
    settings = use_free_metrics_ports(settings.model_copy(update={
        "rag": settings.rag.model_copy(update={"enabled": True}),
        "lakehouse": settings.lakehouse.model_copy(update={"flush_s": 1.0})}))
    _register(settings, console)
    keys = provision_keys(settings, actor="rag-demo")
    with Components(settings, name="rag-demo") as components:
        start_simulator(settings, components)
        for name, command in (("rag-worker", ("rag", "worker")), *request_stages(settings),
                              ("lakehouse-sink", ("lakehouse", "sink"))):
            components.start(name, *command)
        files = [REPO_ROOT / "README.md", REPO_ROOT / "docs"]
        sent = ingest(settings, COLLECTION, files)
        console.print(f"[bold]ingest[/] {len(sent)} documents to the documents topic")
        began = time.monotonic()
        chunks = wait_indexed(settings, COLLECTION, len(sent))
        console.print(f"[bold]indexed[/] {chunks} chunks in {time.monotonic() - began:.0f} s "
                      f"(Delta table + online store)")
        time.sleep(3)  # the request-path worker has read the published policy
        fed = _ask(settings, keys, console)
        if not fed:
            raise RagDemoError("no research answer was given passages")
        retracted = fed[0]
        producer = DocumentProducer(settings)
        producer.send(document_event(COLLECTION, retracted, int(time.time() * 1000), deleted=True))
        producer.flush()
        console.print(f"[bold]retracted[/] {retracted} (a deletion on the documents topic)")
        _lineage(settings, retracted, console)
        if components.dead():
            raise RagDemoError(f"components exited: {components.dead()} (logs in {components.logs})")
    policy = load_policy(settings.state_dir / "rag-demo-gateway.yaml")
    console.print(f"done; policy {policy.version}; logs in {settings.state_dir / 'logs'}")
