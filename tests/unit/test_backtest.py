"""Policy backtest on a constructed history (real Delta tables, no broker) where the answer is known.

History (live policy = config/gateway.yaml): search and support send gpt-4o-mini (openai us), some with
an e-mail address the live policy redacted; marketing sends `fast`; one support request asked for a
region no target served (rejected at routing, so stored); two research requests were rejected live
before storage. The candidate blocks EMAIL for search only, moves gpt-4o-mini to the simulator's
sim-small (whose price changed at midnight), adds an `ap` target, and gives marketing 2 requests/minute.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from apps.backtest import history
from apps.backtest.recorded import write_bronze
from apps.backtest.run import backtest
from apps.backtest.summary import FailOnError, fails, redact_all
from apps.cli.main import app
from shared.policy.config import GatewayPolicy, load_policy, parse_policy
from streamgate.catalog import default_catalog
from streamgate.config import Settings

NOW = int(datetime(2026, 12, 1, 12, tzinfo=UTC).timestamp() * 1000)
YESTERDAY = NOW - 86_400_000
KEY = "key_0123456789abcdef"
PROMPT, COMPLETION = 100, 50


def _request(
    rid: str,
    team: str,
    project: str,
    model: str,
    at: int,
    text: str,
    region: str | None = None,
    metadata: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    return {
        "request_id": rid,
        "trace_id": rid,
        "session_id": None,
        "team": team,
        "project": project,
        "api_key_id": KEY,
        "user_id": None,
        "model": model,
        "messages": [
            {"role": "user", "content": text, "name": None, "tool_calls_json": None, "tool_call_id": None}
        ],
        "params": {
            "max_tokens": 200,
            "temperature": None,
            "top_p": None,
            "stream": False,
            "response_format": None,
            "stop": [],
            "tools_json": None,
            "tool_choice_json": None,
            "response_schema_json": None,
            "extra_json": None,
        },
        "tags": [],
        "metadata": metadata or [],
        "region": region,
        "reply_partition": None,
        "created_at": at,
    }


def _routed(req: dict[str, Any], provider: str, model: str, strategy: str = "single") -> dict[str, Any]:
    return {
        **{
            k: req[k]
            for k in (
                "request_id",
                "trace_id",
                "session_id",
                "team",
                "project",
                "api_key_id",
                "user_id",
                "messages",
                "params",
                "tags",
                "metadata",
                "region",
                "reply_partition",
                "created_at",
            )
        },
        "requested_model": req["model"],
        "strategy": strategy,
        "targets": [
            {"provider": provider, "model": model, "region": "us", "timeout_ms": 20000, "weight": 1.0}
        ],
        "routing_config_version": "2026-11-24.1",
        "policy_version": "2026-11-24.1",
        "guardrail_actions": [],
        "routed_at": req["created_at"] + 1,
    }


def _response(
    rid: str,
    team: str,
    project: str,
    at: int,
    status: str,
    reason: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    cost: int = 0,
) -> dict[str, Any]:
    return {
        "request_id": rid,
        "trace_id": rid,
        "team": team,
        "project": project,
        "api_key_id": KEY,
        "status": status,
        "reason_code": reason,
        "message": None,
        "content": None,
        "tool_calls_json": None,
        "finish_reason": None,
        "provider": provider,
        "model": model,
        "target_index": 0 if provider else None,
        "cache_hit": False,
        "cache_kind": None,
        "usage": {
            "prompt_tokens": PROMPT if provider else 0,
            "completion_tokens": COMPLETION if provider else 0,
            "cached_tokens": 0,
            "reasoning_tokens": 0,
        },
        "cost_nanousd": cost,
        "latency_ms": 10.0,
        "created_at": at,
        "completed_at": at + 20,
    }


def _telemetry(req: dict[str, Any], provider: str, model: str, cost: int) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "request_id": req["request_id"],
        "trace_id": req["request_id"],
        "attempt": 0,
        "fallback_index": 0,
        "team": req["team"],
        "project": req["project"],
        "api_key_id": KEY,
        "user_id": None,
        "provider": provider,
        "model": model,
        "region": "us",
        "status": "ok",
        "error_class": None,
        "http_status": 200,
        "stream": False,
        "prompt_tokens": PROMPT,
        "completion_tokens": COMPLETION,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "usage_source": "provider",
        "latency_ms": 10.0,
        "ttft_ms": None,
        "cache_hit": False,
        "cache_kind": None,
        "cost_nanousd": cost,
        "price_version": None,
        "routing_config_version": None,
        "tags": [],
        "started_at": req["created_at"] + 2,
        "ended_at": req["created_at"] + 12,
    }


def _verdict(req: dict[str, Any], kind: str, action: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "request_id": req["request_id"],
        "team": req["team"],
        "stage": "input",
        "guardrail": "pii",
        "action": action,
        "entities": [{"type": kind, "start": 0, "end": 5, "score": 1.0, "action": action}],
        "policy_version": "2026-11-24.1",
        "reason": None,
        "created_at": req["created_at"],
    }


def _cost(provider: str, model: str, at: int) -> int:
    catalog = default_catalog()
    return catalog.priced_at(catalog.get(f"{provider}/{model}"), at).cost_nanousd(PROMPT, COMPLETION)


def _history(settings: Settings) -> dict[str, Any]:
    requests, routed, responses, telemetry, verdicts = [], [], [], [], []
    expected: dict[str, Any] = {"actual": 0, "projected": 0}

    def served(req: dict[str, Any], provider: str, model: str, strategy: str = "single") -> int:
        cost = _cost(provider, model, req["created_at"])
        requests.append(req)
        routed.append(_routed(req, provider, model, strategy))
        responses.append(
            _response(
                req["request_id"],
                req["team"],
                req["project"],
                req["created_at"],
                "ok",
                provider=provider,
                model=model,
                cost=cost,
            )
        )
        telemetry.append(_telemetry(req, provider, model, cost))
        expected["actual"] += cost
        return cost

    for i in range(10):  # search: 3 of them held an e-mail address (redacted live); half yesterday
        at = (YESTERDAY if i % 2 else NOW) - 3_600_000 + i * 1000
        email = i < 3
        meta = [("guard.pii", "redact:EMAIL")] if email else []
        req = _request(
            f"search-{i}",
            "search",
            "ranker",
            "gpt-4o-mini",
            at,
            "mail <EMAIL_1> about it" if email else f"rank these {i}",
            metadata=meta,
        )
        served(req, "openai", "gpt-4o-mini")
        if email:
            verdicts.append(_verdict(req, "EMAIL", "redact"))
        else:  # re-routed to sim-small at the price of its day (the price changed at midnight)
            expected["projected"] += _cost("simulator", "sim-small", at)
    for i in range(5):  # support: also e-mail, but the candidate blocks EMAIL for search only
        at = NOW - 1_800_000 + i * 1000
        req = _request(
            f"support-{i}",
            "support",
            "chatbot",
            "gpt-4o-mini",
            at,
            "write to <EMAIL_1>",
            metadata=[("guard.pii", "redact:EMAIL")],
        )
        served(req, "openai", "gpt-4o-mini")
        verdicts.append(_verdict(req, "EMAIL", "redact"))
        expected["projected"] += _cost("simulator", "sim-small", at)
    for i in range(4):  # marketing, one minute: the candidate's 2 requests/minute rejects the last 2
        at = NOW - 600_000 + i * 1000
        req = _request(f"marketing-{i}", "marketing", "copy", "fast", at, f"a tagline {i}")
        cost = served(req, "openai", "gpt-4o-mini", "latency")
        if i < 2:
            expected["projected"] += cost
    # support asked for region ap: no target served it (stored: it passed the guardrails), rejected at routing
    ap = _request("support-ap", "support", "chatbot", "gpt-4o-mini", NOW - 60_000, "x" * 400, region="ap")
    requests.append(ap)
    responses.append(
        _response("support-ap", "support", "chatbot", ap["created_at"], "rejected", "no_target_in_region")
    )
    for i in range(2):  # research: an SSN, blocked live before storage (only the answer and verdict remain)
        responses.append(
            _response(f"research-{i}", "research", "evals", NOW - 120_000, "rejected", "pii_blocked")
        )
    for name, rows in (
        ("requests", requests),
        ("routed", routed),
        ("responses", responses),
        ("telemetry", telemetry),
        ("verdicts", verdicts),
    ):
        write_bronze(settings, name, rows)
    return expected


def _candidate(live: GatewayPolicy) -> dict[str, Any]:
    doc = live.model_dump(mode="json")
    doc["version"] = "candidate-1"
    doc["teams"]["search"]["pii"] = {"EMAIL": "block"}
    doc["routing"]["routes"]["gpt-4o-mini"] = {
        "strategy": "single",
        "targets": [{"provider": "simulator", "model": "sim-small", "region": "us"}],
        "fallbacks": [{"provider": "openai", "model": "gpt-4o-mini", "region": "ap"}],
    }
    doc["budgets"]["marketing"] = {"requests_per_minute": 2}
    return doc


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Settings, dict[str, Any], dict[str, Any]]:
    settings = Settings(state_dir=tmp_path)
    return settings, _history(settings), _candidate(load_policy())


def test_a_constructed_history_gives_the_known_answer(
    recorded: tuple[Settings, dict[str, Any], dict[str, Any]],
) -> None:
    settings, expected, doc = recorded
    summary = backtest(settings, parse_policy(doc), since="2d", until_ms=NOW)
    assert summary["requests"] == 22 and summary["replayed"] == 20
    assert summary["not_replayed"] == {"count": 2, "by_live_reason": {"pii_blocked": 2}}
    assert summary["newly_rejected"] == 5 and summary["newly_allowed"] == 1 and summary["rerouted"] == 12
    assert summary["reason_changed"] == 0
    search, support, marketing = (summary["by_team"][t] for t in ("search", "support", "marketing"))
    assert search["newly_rejected"] == 3 and search["reasons"] == {"newly_rejected": {"pii_blocked": 3}}
    assert search["reroutes"] == {"openai/gpt-4o-mini -> simulator/sim-small": 7}
    assert support["newly_rejected"] == 0 and support["reroutes"] == {
        "openai/gpt-4o-mini -> simulator/sim-small": 5
    }
    assert support["newly_allowed"] == 1 and support["reasons"] == {
        "newly_allowed": {"no_target_in_region": 1}
    }
    assert marketing["newly_rejected"] == 2 and marketing["reasons"] == {
        "newly_rejected": {"budget_exceeded": 2}
    }
    assert (
        summary["by_team"]["research"]["requests"] == 2
        and summary["by_team"]["research"]["newly_rejected"] == 0
    )
    # costs to the nano-dollar: actual from telemetry; projected = sim-small at each day's price for the
    # re-routed, 0 for the newly rejected, recorded cost for the unchanged, plus the newly allowed estimate
    ap = default_catalog().get("openai/gpt-4o-mini").cost_nanousd(400 // 4, COMPLETION)
    assert summary["actual_cost_usd"] == round(expected["actual"] / 1e9, 6)
    assert _cost("simulator", "sim-small", NOW) < _cost(
        "simulator", "sim-small", YESTERDAY
    )  # midnight's change
    assert summary["projected_cost_usd"] == round((expected["projected"] + ap) / 1e9, 6)
    assert summary["estimated_cost_requests"] == 1  # only the newly allowed: sim-small counts like OpenAI
    [budget] = summary["budget_effects"]
    assert budget["scope"] == "marketing" and budget["rejections"] == 2
    assert budget["first_hit_at"] == "2026-12-01T11:50:02+00:00" and budget["live_replay_rejections"] == 0
    assert summary["redacted_content_requests"] == 8
    assert summary["fidelity"]["status_share"] == 1.0
    assert summary["fidelity"]["target_matches"] == summary["fidelity"]["target_compared"] == 19
    assert {s["change"] for s in summary["sample"]} == {"newly_rejected", "newly_allowed", "rerouted"}
    assert fails("newly_rejected_share > 0.01", summary) and not fails(
        "rerouted > 12 or changed < 18", summary
    )


def test_related_tables_are_read_for_the_windows_requests_only(
    recorded: tuple[Settings, dict[str, Any], dict[str, Any]],
) -> None:
    """Routes, attempts and findings are read by date around the window, and only for its requests:
    the dates hold their whole days (the 1M demo's own window read 5.2 million of the day's rows)."""
    settings, _, _ = recorded
    window = history.Window(NOW - 1_900_000, NOW)  # the last half hour: not the search team's requests
    ids = history.answers(settings, window)["request_id"].combine_chunks()
    wanted = set(ids.to_pylist())
    for table in (history.routed(settings, window, ids), history.attempts(settings, window, ids),
                  history.findings(settings, window, ids)):
        assert table.num_rows and set(table["request_id"].to_pylist()) <= wanted
    day = set(history.attempts(settings, window)["request_id"].to_pylist())
    assert {r for r in day - wanted if r.startswith("search-")}, "the dates alone hold other requests"


def test_the_live_policy_against_itself_changes_nothing(
    recorded: tuple[Settings, dict[str, Any], dict[str, Any]],
) -> None:
    settings, expected, _ = recorded
    summary = backtest(settings, load_policy(), since="2d", until_ms=NOW)
    assert summary["changed"] == 0 and summary["projected_cost_usd"] == summary["actual_cost_usd"]
    assert (
        summary["actual_cost_usd"] == round(expected["actual"] / 1e9, 6) and summary["budget_effects"] == []
    )


def test_the_command_prints_json_and_exits_1_on_its_rule(
    recorded: tuple[Settings, dict[str, Any], dict[str, Any]], tmp_path: Path
) -> None:
    settings, _, doc = recorded
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(yaml.safe_dump(doc))
    env = {"STREAMGATE_STATE_DIR": str(settings.state_dir)}
    args = ["policy", "backtest", str(candidate), "--since", "2026-11-29", "--json"]
    result = CliRunner().invoke(app, [*args, "--fail-on", "newly_rejected_share > 0.01"], env=env)
    assert result.exit_code == 1, result.output
    out = json.loads(result.output)
    for key in (
        "requests",
        "newly_rejected",
        "newly_allowed",
        "rerouted",
        "actual_cost_usd",
        "projected_cost_usd",
        "by_team",
    ):
        assert key in out
    assert out["failed"] is True and out["newly_rejected"] == 5
    passed = CliRunner().invoke(app, [*args, "--fail-on", "newly_rejected_share > 0.5"], env=env)
    assert passed.exit_code == 0 and json.loads(passed.output)["failed"] is False
    bad = CliRunner().invoke(app, [*args, "--fail-on", "__import__('os')"], env=env)
    assert bad.exit_code == 2
    one_team = CliRunner().invoke(app, [*args, "--team", "search"], env=env)
    assert one_team.exit_code == 0, one_team.output
    assert json.loads(one_team.output)["requests"] == 10 and set(json.loads(one_team.output)["by_team"]) == {
        "search"
    }


def test_fail_on_evaluates_only_comparisons_over_numbers() -> None:
    summary = {"newly_rejected_share": 0.02, "requests": 10, "by_team": {}}
    assert fails("newly_rejected_share > 0.01 and requests >= 10", summary)
    assert not fails("not (requests > 5)", summary)
    with pytest.raises(FailOnError, match="unknown name"):
        fails("by_team > 1", summary)
    with pytest.raises(FailOnError):
        fails("requests.__class__", summary)


def test_sample_text_is_redacted_whatever_the_policy_stored() -> None:
    assert redact_all("mail jane@example.com from 10.0.0.1") == "mail <EMAIL> from <IP_ADDRESS>"


def test_the_report_shows_the_last_backtest_by_team(
        recorded: tuple[Settings, dict[str, Any], dict[str, Any]]) -> None:
    from apps.backtest.run import save_summary
    from apps.report.data import load_report_data
    from apps.report.page import render_page

    settings, _, doc = recorded
    save_summary(settings, backtest(settings, parse_policy(doc), since="2d", until_ms=NOW))
    page = render_page(load_report_data(settings))
    assert "Policy backtest: candidate-1 against live 2026-11-24.1" in page
    card = page.split('aria-label="policy backtest by team"', 1)[1].split("</section>", 1)[0]
    assert "search newly rejected: 3" in card and "support re-routed: 5" in card
    assert "marketing newly rejected: 2" in card


def test_one_team_only(recorded: tuple[Settings, dict[str, Any], dict[str, Any]]) -> None:
    settings, _, doc = recorded
    summary = backtest(settings, parse_policy(doc), since="2d", team="search", until_ms=NOW)
    assert summary["requests"] == 10 and set(summary["by_team"]) == {"search"}
    assert (summary["newly_rejected"], summary["rerouted"], summary["newly_allowed"]) == (3, 7, 0)


def test_provider_health_is_read_as_it_was_at_the_request_time() -> None:
    import pyarrow as pa

    from apps.backtest.context import PointInTimeHealth

    ts = pa.array([1_000, 5_000, 2_000], pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
    rows = pa.table({"target": ["openai/gpt-4o-mini", "openai/gpt-4o-mini", "azure/gpt-4o-mini"],
                     "event_timestamp": ts, "latency_p95_ms": [100.0, 900.0, 300.0],
                     "error_rate": [0.0, 0.6, 0.1], "attempts_5m": [10, 20, 30]})
    health = PointInTimeHealth(rows, ttl_ms=10_000)
    seen = []
    for at in (500, 1_000, 4_999, 5_000, 15_000, 15_001):
        health.at_ms = at
        stats = health.get("openai", "gpt-4o-mini")
        seen.append(None if stats is None else stats.p95_ms)
    assert seen == [None, 100.0, 100.0, 900.0, 900.0, None]  # none yet, then the latest, then expired
    health.at_ms = 2_500
    assert health.get("azure", "gpt-4o-mini") is not None and health.get("anthropic", "x") is None
    assert list(health.boundaries()) == [1_000, 2_000, 5_000, 11_001, 12_001, 15_001]


def test_latency_routing_reads_the_recorded_provider_health(
        recorded: tuple[Settings, dict[str, Any], dict[str, Any]]) -> None:
    """`fast` is a latency route: with openai's gpt-4o-mini failing in the health the push worker
    recorded before marketing's requests, both policies route by that health, not by today's."""
    import pyarrow as pa

    from features.tables import append

    settings, _, _ = recorded
    settings = settings.model_copy(update={"features": settings.features.model_copy(
        update={"health_source": "feast"})})
    at = pa.array([NOW - 700_000] * 2, pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
    append(settings, "provider_health", pa.table({
        "target": ["openai/gpt-4o-mini", "azure/gpt-4o-mini"], "event_timestamp": at,
        "latency_p50_ms": [40.0, 30.0], "latency_p95_ms": [80.0, 60.0], "error_rate": [0.9, 0.0],
        "attempts_5m": [50, 50]}))
    live = load_policy()
    doc = live.model_dump(mode="json")
    doc["version"] = "no-azure-fast"
    doc["routing"]["routes"]["fast"]["targets"] = [t for t in doc["routing"]["routes"]["fast"]["targets"]
                                                   if t["provider"] != "azure"]
    summary = backtest(settings, parse_policy(doc), live=live, since="2d", until_ms=NOW)
    assert summary["rerouted"] == 4
    assert summary["by_team"]["marketing"]["reroutes"] == {"azure/gpt-4o-mini -> simulator/sim-small": 4}
    # the live path recorded openai for them (it read no health then): the replay says it differs
    assert summary["fidelity"]["target_compared"] == 19 and summary["fidelity"]["target_matches"] == 15


def test_per_minute_budgets_as_columns_equal_the_live_check_per_row() -> None:
    import numpy as np

    from apps.backtest.replay import Outcome, _budgets

    doc = load_policy().model_dump(mode="json")
    doc["budgets"] = {"research": {"requests_per_minute": 150, "soft_ratio": 0.8},
                      "marketing": {"requests_per_minute": 40, "soft_ratio": 0.5}, "search": {}}
    policy = parse_policy(doc)
    rng = np.random.default_rng(1)
    n = 4000
    teams = ["research", "marketing", "search", "support"]
    events = [{"team": t, "api_key_id": KEY, "messages": [{"content": "x" * 40}],
               "params": {"max_tokens": 10}} for t in teams]
    gid = rng.integers(0, len(teams), n)
    created = NOW + rng.integers(0, 300_000, n)
    stored = rng.random(n) < 0.95
    results = []
    for columnar in (True, False):
        outcome = Outcome(admitted=rng.random(n) < 2, stage=np.full(n, "", object),
                          reason=np.full(n, "", object), target=np.full(n, "openai/gpt-4o-mini", object),
                          pre_budget=np.zeros(n, bool), cost_nanousd=np.zeros(n, np.int64))
        effects = _budgets(policy, outcome, events, gid, stored, created, columnar=columnar)
        results.append((outcome, effects))
    (fast, fast_effects), (loop, loop_effects) = results
    assert (fast.admitted == loop.admitted).all() and (fast.reason == loop.reason).all()
    assert (fast.target == loop.target).all() and (~fast.admitted).sum() > 100
    assert fast_effects == loop_effects and set(loop_effects) == {"research", "marketing"}


def test_sizes_are_keyed_by_the_thresholds_the_policies_compare_them_with() -> None:
    import numpy as np

    from apps.backtest.features import size_edges

    live = load_policy()  # `smart` routes prompts over 4000 characters elsewhere; limits 200000 and 32000
    edges = size_edges((live,))
    assert edges is not None
    chars, tokens = edges
    assert list(chars) == [4000, 4001, 200000, 200001] and list(tokens) == [32000, 32001]
    buckets = np.searchsorted(chars, [10, 3999, 4000, 4001, 9000, 200001], side="right")
    assert list(buckets) == [0, 0, 1, 2, 2, 4]  # 4000 is not > 4000, 4001 is: different buckets
    doc = live.model_dump(mode="json")
    doc["budgets"]["search"] = {"tokens_per_minute": 1000}
    assert size_edges((live, parse_policy(doc))) is None  # budgets count each request's tokens


def test_a_candidate_with_other_content_rules_rejects_what_they_match(
    recorded: tuple[Settings, dict[str, Any], dict[str, Any]],
) -> None:
    """Deny patterns and blocked topics are judged on the stored text by the live `check_content`."""
    settings, expected, _ = recorded
    live = load_policy()
    doc = live.model_dump(mode="json")
    doc["version"] = "stricter-content"
    doc["guardrails"]["deny_patterns"] = [*doc["guardrails"]["deny_patterns"], r"(?i)\btagline\b"]
    doc["guardrails"]["blocked_topics"] = [*doc["guardrails"]["blocked_topics"], "rank these"]
    summary = backtest(settings, parse_policy(doc), live=live, since="2d", until_ms=NOW)
    assert (summary["newly_rejected"], summary["newly_allowed"], summary["rerouted"]) == (11, 0, 0)
    teams = summary["by_team"]
    assert teams["marketing"]["reasons"] == {"newly_rejected": {"policy_denied": 4}}
    assert teams["search"]["reasons"] == {"newly_rejected": {"blocked_topic": 7}}  # not the 3 e-mails
    dropped = sum(_cost("openai", "gpt-4o-mini", NOW - 600_000 + i * 1000) for i in range(4)) + sum(
        _cost("openai", "gpt-4o-mini", (YESTERDAY if i % 2 else NOW) - 3_600_000 + i * 1000)
        for i in range(3, 10)
    )
    assert summary["projected_cost_usd"] == round((expected["actual"] - dropped) / 1e9, 6)


def test_content_codes_equal_the_live_check_per_request() -> None:
    """The columnar keys group requests exactly by their text lists (separators inside texts, empty
    lists, null contents, a sliced batch) and each gets what `check_content` says for its own texts."""
    import pyarrow as pa

    from apps.backtest.replay import _content_codes
    from shared.guardrails.content import check_content

    def msgs(*texts: str | None) -> list[dict[str, Any]]:
        return [{"role": "user", "content": t} for t in texts]

    rows = [
        msgs("a tagline"), msgs("a", "tagline"), msgs("a\x1f0tagline"), msgs("a\x1f", "0tagline"),
        msgs(), msgs(""), msgs(None), msgs("build a bomb now"), msgs("x" * 400), msgs("x" * 200, "x" * 200),
        msgs("a tagline"), None,
    ]
    messages = pa.array(rows, pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])))
    doc = load_policy().model_dump(mode="json")
    doc["guardrails"] = {"deny_patterns": [r"(?i)\btagline\b"], "blocked_topics": ["build a bomb"],
                         "max_prompt_tokens": 60}
    rules = [load_policy().guardrails, parse_policy(doc).guardrails]
    for array in (messages, messages.slice(3, 7)):
        codes = _content_codes(array, rules).to_pylist()
        want = []
        for row in array.to_pylist():
            found = [check_content([m["content"] or "" for m in row or []], r) for r in rules]
            want.append(",".join(f.reason_code if f else "" for f in found))
        assert codes == want
    assert len(set(_content_codes(messages, rules).to_pylist())) > 3


def test_a_reroute_to_another_tokenizer_is_rescaled_and_marked_estimated() -> None:
    """Tokens counted by OpenAI's tokenizer, priced at an Anthropic model: scaled by characters per
    token (4 / 3.5) and marked estimated; the same family keeps its tokens; an unknown target is unpriced."""
    import numpy as np

    from apps.backtest.context import price

    catalog = default_catalog()
    targets = np.array(["anthropic/claude-haiku-4-5", "simulator/sim-small", "nowhere/none"], object)
    served = np.array(["openai/gpt-4o-mini"] * 3, object)
    ones = np.ones(3, np.int64)
    priced = price(catalog, targets, served, ones * NOW, ones * 400, ones * 100, ones * 0)
    haiku = catalog.priced_at(catalog.get("anthropic/claude-haiku-4-5"), NOW).cost_nanousd(457, 114)
    small = catalog.priced_at(catalog.get("simulator/sim-small"), NOW).cost_nanousd(400, 100)
    assert list(priced.cost_nanousd) == [haiku, small, 0]
    assert list(priced.estimated) == [True, False, False] and list(priced.unpriced) == [False, False, True]
