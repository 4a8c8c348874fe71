"""`streamgate demo` end to end on the test broker, small: every request gets an outcome."""

from __future__ import annotations

from pathlib import Path

import pytest
from deltalake import DeltaTable, write_deltalake
from rich.console import Console

from apps.demo.observe import Outcomes
from apps.demo.processes import use_simulator_port
from apps.demo.rag_part import ASKS, COLLECTION, NOTES
from apps.demo.run import frontdoor_calls, run_demo
from lakehouse.quality import alert, record, run_checks
from lakehouse.silver import merge_request_facts
from shared.tables.query import find_tables, run_query
from streamgate.config import COMPONENTS, Settings
from tests.conftest import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_demo_accounts_for_every_request(settings: Settings) -> None:  # noqa: PLR0915 - one run, many checks
    external = use_simulator_port(settings.model_copy(update={"kafka": settings.kafka.model_copy(
        update={"bootstrap_servers": settings.kafka.bootstrap()})}), free_port())
    console = Console(record=True, width=120)
    outcomes = run_demo(external, requests=400, duration_s=12, stall_s=60, console=console)
    # the Kafka workload, the front door's calls (official openai SDK) and the RAG part's tagged questions:
    # every one answered once
    assert len(outcomes.answered) == 400 + frontdoor_calls(400) + len(ASKS)
    assert outcomes.answered_twice == 0
    statuses = list(outcomes.answered.values())
    assert statuses.count("ok") > 300 and statuses.count("rejected") == len(outcomes.rejected)
    assert outcomes.cost_nanousd > 0 and sum(outcomes.attempts.values()) >= statuses.count("ok")
    assert outcomes.dead_letters["malformed"] >= 3 and outcomes.dead_letters["duplicate"] >= 4
    text = console.export_text()
    assert "requests by outcome" in text and "routing split" in text and "provider attempts" in text
    # paced: a 50x burst, a provider that degrades and recovers, the lag it caused
    assert "50x burst" in text and "provider degraded" in text and "provider recovered" in text
    # the default deployment: one fused gateway worker decides and answers (apps/gateway/)
    assert "peak memory (RSS)" in text and "gateway-worker" in text.split("peak memory (RSS)")[1]
    door = text.split("front door (official openai SDK", 1)[1].split("\n", 1)[0]
    assert f"{frontdoor_calls(400)} calls" in door and "status 200: " in door
    assert "consumer lag peak" in text and outcomes.mine == 400 and outcomes.latencies_ms.count > 300
    # what the gateway itself added, paired from responses and telemetry for every provider answer
    assert "gateway's own added latency" in text
    provider_answers = statuses.count("ok") - sum(outcomes.cache_hits.values())
    # (the last answers' telemetry may still be unread when every outcome is known)
    assert 0.95 * provider_answers <= outcomes.gateway_ms.count <= provider_answers
    # from each answer's own completion: the demo reads answers only after sending, which once made
    # this median the run's length (29 s in a 60 s demo)
    assert outcomes.gateway_ms.get_quantile_value(0.5) < 10_000
    # the lakehouse caught up: every attempt and every final answer landed once, cost to the nano-dollar
    [landed] = run_query(external, "select count(*) as n, sum(cost_nanousd) as cost from telemetry"
                                   ).to_pylist()
    assert landed == {"n": sum(outcomes.attempts.values()), "cost": outcomes.cost_nanousd}
    [answers] = run_query(external, "select count(*) as n, count(distinct request_id) as ids "
                                    "from responses").to_pylist()
    assert answers == {"n": len(outcomes.answered), "ids": len(outcomes.answered)}
    assert "cost by team" in text
    _check_rag(external, outcomes, text)
    # every component served metrics on its own port, and the report was written from the tables
    ports = external.metrics.ports
    served = {"dispatcher": "gateway-worker"}  # fused: on the dispatcher's port; no streams worker
    assert all(f"{served.get(c, c.replace('_', '-'))} :{getattr(ports, c)}" in text
               for c in COMPONENTS if c != "streams_worker")
    report = external.state_dir / "report.html"
    assert f"report {report}" in text.replace("\n", "")
    page = report.read_text()
    assert page.count('<svg class="chart"') == 10 and 'class="empty"' not in page
    # the recorded traffic replayed: the live policy against itself changes nothing (real broker, real
    # Delta tables), and the example candidate's diff is in the summary and the report
    backtest = text.split("policy backtest, live policy against itself: ", 1)[1].split(" · try ", 1)[0]
    assert backtest.startswith("0 changed of ") and "newly rejected" in backtest
    assert "Policy backtest: " in page and 'aria-label="policy backtest by team"' in page
    from apps.backtest.run import backtest as run_backtest
    from apps.backtest.run import example_candidate
    from shared.policy.config import load_policy

    same = run_backtest(external, load_policy(), since="1d", sample=0)
    assert same["changed"] == 0 and same["projected_cost_usd"] == same["actual_cost_usd"]
    assert same["actual_cost_usd"] == round(outcomes.cost_nanousd / 1e9, 6)
    assert same["requests"] == len(outcomes.answered) and same["replayed"] > 300
    assert same["fidelity"]["status_share"] > 0.99  # the live policy's replay reproduces the record
    changed = run_backtest(external, example_candidate(load_policy()), since="1d")
    reasons = {r for t in changed["by_team"].values() for r in t["reasons"].get("newly_rejected", {})}
    assert changed["newly_rejected"] > 0 and reasons == {"pii_blocked"}
    assert changed["by_team"]["research"]["newly_rejected"] == 0  # research allows e-mail addresses
    assert changed["rerouted"] > 0 and changed["projected_cost_usd"] != changed["actual_cost_usd"]
    # the feature store: the push worker's provider health and team spend are online, as pushed
    assert "online features (Feast)" in text and "team spend today (online, pushed): none" not in text
    from features.store import open_store

    store = open_store(external)
    [team] = run_query(external, "select team from gold_daily_cost group by team order by sum(cost_nanousd) "
                                 "desc limit 1").to_pylist()
    online = store.get_online_features(["team_usage:spend_today_nanousd"], [team]).to_dict()
    assert online["spend_today_nanousd"][0] > 0
    [health] = run_query(external, "select sum(attempts) as n, max(latency_p99_ms) as p99 "
                                   "from gold_provider_daily").to_pylist()
    assert health["n"] > 0 and health["p99"] > 0
    [hits] = run_query(external, "select sum(entities) as n from gold_guardrail_daily").to_pylist()
    assert hits["n"] == sum(outcomes.entities.values())
    [facts] = run_query(external, "select count(*) as n, count(distinct request_id) as ids, "
                                  "sum(cost_nanousd) as cost from silver_request_facts").to_pylist()
    answered = len(outcomes.answered)
    assert facts == {"n": answered, "ids": answered, "cost": outcomes.cost_nanousd}
    assert merge_request_facts(external) == answered  # a second MERGE updates in place: still one row each
    [again] = run_query(external, "select count(*) as n from silver_request_facts").to_pylist()
    assert again["n"] == answered

    # no raw PII at rest: the values the workload injects (redacted or blocked for every team by the
    # policy) appear in no bronze, silver or gold table, though the guardrails saw them on the way in
    injected = ("4111 1111 1111 1111", "123-45-67", "DE89 3704 0044 0532 0130 00", "+1 415 555 01")
    assert sum(outcomes.entities[k] for k in ("CREDIT_CARD", "US_SSN", "IBAN", "PHONE")) > 0
    for name, path in find_tables(external.table_root()).items():
        stored = repr(DeltaTable(str(path)).to_pyarrow_table().to_pylist())
        assert not [v for v in injected if v in stored], f"raw PII at rest in {name}"

    # data quality: the demo's tables pass every expectation; a duplicated response is caught
    assert "data quality" in text and all(r.success for r in run_checks(external))
    responses = Path(find_tables(external.table_root())["responses"])
    write_deltalake(str(responses), DeltaTable(str(responses)).to_pyarrow_table().slice(0, 1), mode="append")
    failed = [r for r in run_checks(external) if not r.success]
    assert [(r.table, r.expectation, r.unexpected) for r in failed] == [
        ("responses", "expect_column_values_to_be_unique", 2)]
    assert alert(external, failed) == 1 and record(external, failed).exists()


def _check_rag(settings: Settings, outcomes: Outcomes, text: str) -> None:
    """research registered its collection, it was indexed from the documents topic, research's tagged
    questions got its passages, marketing's was refused `rag_denied`, and the lakehouse knows which
    chunks and document versions fed which answer."""
    from features.collections.indexer import online_path
    from features.collections.online import OnlineStore

    assert f"rag ingest 4 documents of {COLLECTION}" in text
    assert f"RAG: requests tagged rag: {COLLECTION}" in text
    assert list(outcomes.rejected.values()).count("rag_denied") == 1  # marketing's question, only
    store = OnlineStore(online_path(settings))
    try:
        versions = {d: v for (c, d), (v, deleted) in store.versions().items() if c == COLLECTION}
    finally:
        store.close()
    assert set(versions) == {f.name for f in NOTES.glob("*.md")}
    rows = run_query(settings, "select r.request_id, r.team, c['collection'] as collection, "
                               "c['doc_id'] as doc_id, c['doc_version'] as doc_version from (select "
                               "request_id, team, unnest(rag_chunks) as c from responses) r "
                               f"where c['collection'] = '{COLLECTION}'").to_pylist()
    research = sum(1 for team, _, _ in ASKS if team == "research")
    assert {r["team"] for r in rows} == {"research"} and len({r["request_id"] for r in rows}) == research
    assert all(versions[r["doc_id"]] == r["doc_version"] for r in rows)  # the version indexed, not a guess
    assert "eval-protocol.md" in {r["doc_id"] for r in rows}  # the win-rate question found its note
    lineage = text.split("RAG lineage", 1)[1]
    assert f"{len(rows)} chunks fed {research} answers" in lineage
    assert all(f"answer {r['request_id']} (research) <- {r['doc_id']}@{r['doc_version']}" in lineage
               for r in rows)
