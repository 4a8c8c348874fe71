"""The main demo's RAG part: a team registers its own collection, feeds it through the documents topic,
and the gateway serves it to that team only, recording which chunks fed which answer.

1. Before the workers start, `research` registers `research-notes` (a new policy version on the config
   topic, beside the policy's own `support-kb`) and four short notes go to the documents topic;
2. the RAG worker indexes them while the workload runs (a few chunks: seconds of embedding);
3. after the workload, research asks two tagged questions (answered, with passages) and marketing asks
   one (rejected `rag_denied`, audited), all at once;
4. once the lakehouse has caught up, the answers' lineage (chunk ids and document versions) is read back
   from the `responses` table with the SQL `streamgate query` runs.

Small on purpose: it must add seconds to the demo, not minutes (`streamgate rag demo` is the long one).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from apps.demo.rag import RagDemoError, register, wait_indexed
from features.collections.ingest import ingest
from frontdoor.outcomes import retry_after_s
from shared.policy.config import RagCollection
from shared.tables.query import run_query
from shared.traffic.workload import TEAMS, WorkloadKeys
from streamgate.client import GatewayClient, GatewayError
from streamgate.config import Settings

COLLECTION = "research-notes"
OWNER = "research"
NOTES = Path(__file__).parent / "research_notes"
#: (team, project, question): research owns the collection, marketing may not read it
ASKS = (("research", "evals", "What win rate must a candidate model reach in the pairwise eval?"),
        ("research", "evals", "May we tune prompts on public benchmark sets like GSM8K?"),
        ("marketing", "copy", "What win rate must a candidate model reach in the pairwise eval?"))
LINEAGE_SQL = ("select r.request_id, r.team, c['doc_id'] as doc_id, c['doc_version'] as doc_version, "
               "c['chunk_id'] as chunk_id from (select request_id, team, unnest(rag_chunks) as c "
               "from responses where request_id in ({ids})) r order by r.request_id, c['chunk_id']")


@dataclass
class Asked:
    """One tagged request and its final answer: status, rejection reason, the chunks it was given."""

    team: str
    question: str
    request_id: str = ""
    status: str = ""
    reason: str = ""
    chunks: list[dict[str, Any]] = field(default_factory=list)


def with_rag(settings: Settings) -> Settings:
    """The request path serves `rag: <collection>` tags (off by default: an embedding per tagged request)."""
    return settings.model_copy(update={"rag": settings.rag.model_copy(update={"enabled": True})})


class RagPart:
    def __init__(self, settings: Settings, console: Console) -> None:
        self.settings, self.console = settings, console
        self.docs = 0
        self.asked: list[Asked] = []
        self.began = 0.0

    def prepare(self) -> None:
        """Register the collection and send its documents (call before the workers start: they read the
        published policy from the config topic as they come up, and the documents wait in theirs)."""
        register(self.settings, self.console, COLLECTION, RagCollection(
            owner=OWNER, description="Research's eval protocol, datasets rules and incident notes", top_k=2))
        sent = ingest(self.settings, COLLECTION, [NOTES])
        self.docs, self.began = len(sent), time.monotonic()
        self.console.print(f"[bold]rag ingest[/] {len(sent)} documents of {COLLECTION} to the documents "
                           f"topic "
                           f"({sum(s.chars for s in sent):,} characters)")

    def ask(self, keys: WorkloadKeys | None, timeout_s: float = 120) -> list[Asked]:
        """Every tagged question at once, each as its team; returns them with their answers."""
        chunks = wait_indexed(self.settings, COLLECTION, self.docs, timeout_s)
        self.console.print(f"[bold]rag indexed[/] {chunks} chunks of {COLLECTION} "
                           f"(Delta table + online store), {time.monotonic() - self.began:.0f} s after "
                           "ingest")
        made_up = {(t.team, p): t.keys[0] for t in TEAMS for p in t.projects}  # identity off: any key
        teams = {(team, project) for team, project, _ in ASKS}
        clients = {tp: GatewayClient(self.settings, api_key=(keys or made_up)[tp], timeout_s=timeout_s)
                   for tp in teams}
        try:
            with ThreadPoolExecutor(len(ASKS)) as pool:
                self.asked = list(pool.map(lambda a: _ask(clients[(a[0], a[1])], a[0], a[1], a[2]), ASKS))
        finally:
            for client in clients.values():
                client.close()
        table = Table(title=f"RAG: requests tagged rag: {COLLECTION} (owner {OWNER})")
        for col in ("team", "question", "outcome", "passages (document@version)"):
            table.add_column(col)
        for a in self.asked:
            outcome = f"[green]{a.status}[/]" if a.status == "ok" else f"[red]{a.status}[/] {a.reason}"
            table.add_row(a.team, a.question, outcome,
                          ", ".join(f"{c['doc_id']}@{c['doc_version']}" for c in a.chunks))
        self.console.print(table)
        if not any(a.chunks for a in self.asked):
            raise RagDemoError(f"no {OWNER} answer was given passages of {COLLECTION}")
        return self.asked

    def lineage(self) -> list[dict[str, Any]]:
        """Which chunks and document versions fed which answer, read back from the lakehouse."""
        ids = ", ".join(f"'{a.request_id}'" for a in self.asked if a.status == "ok")
        if not ids:
            return []
        rows: list[dict[str, Any]] = run_query(self.settings, LINEAGE_SQL.format(ids=ids)).to_pylist()
        self.console.print(f"[bold]RAG lineage[/] (lakehouse `responses.rag_chunks`, "
                           f"`streamgate query`; docs/rag.md): {len(rows)} chunks fed "
                           f"{len({r['request_id'] for r in rows})} answers")
        for row in rows:
            self.console.print(f"  answer {row['request_id']} ({row['team']}) <- {row['doc_id']}"
                               f"@{row['doc_version']} chunk {row['chunk_id']}")
        return rows


#: Times a question refused by its team's per-minute limit is asked again once the minute resets. At a
#: million requests the workload itself keeps research at its limit (150/min) until the backlog drains,
#: which is just when the questions are asked (stops 33 and 34: both refused `budget_exceeded`).
RATE_LIMIT_RETRIES = 2


def _ask(client: GatewayClient, team: str, project: str, question: str,
         sleep: Callable[[float], None] = time.sleep) -> Asked:
    """One question; a per-minute refusal is asked again after the reset, as a caller honours a 429's
    Retry-After (the front door's `retry_after_s`)."""
    asked = Asked(team, question)
    for attempt in range(RATE_LIMIT_RETRIES + 1):
        try:
            response = client.chat(team=team, project=project, model="gpt-4o-mini", tags={"rag": COLLECTION},
                                   messages=[{"role": "user", "content": question}])
        except GatewayError as exc:  # rejected (rag_denied) or failed: the answer says which and why
            message = exc.response.get("message") or ""
            limited = exc.reason_code == "budget_exceeded" and "per minute" in message
            if limited and attempt < RATE_LIMIT_RETRIES:
                sleep(retry_after_s(message))
                continue
            asked.request_id, asked.reason = exc.request_id, exc.reason_code
            asked.status = exc.response["status"]
            return asked
        asked.request_id, asked.status = response["request_id"], response["status"]
        asked.chunks = list(response.get("rag_chunks") or [])
        return asked
    return asked
