"""Policy backtest over 1,000,000 recorded requests: the vectorised replay against the per-event baseline.

History: a pool of demo-workload requests (shared/traffic/workload.py, 50,000 by default) is decided
once by the live path's own functions (validate, guard with the real PII scanner, route) under
config/gateway.yaml; 1,000,000 requests drawn from the pool, each with its own id and time over two days,
are written to the bronze Delta tables as the sink would have landed them (redacted requests, routed,
responses, telemetry with catalog prices, input verdicts). Not timed.

Timed: `backtest()` of the demo's example candidate (EMAIL blocked, gpt-4o-mini moved to sim-small)
plus a 40 requests/minute budget for marketing, against the live policy: Delta read in batches,
signatures, decisions, budgets, costs, summary and sample — the whole command.

Baseline, in the same run: the per-event path, i.e. the live decision functions called for each stored
request of a 20,000-request sample (row read from Delta and normalised, both policies, plus budgets per
row), extrapolated to the run's stored requests; its decisions are compared with the vectorised ones.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from apps.backtest import history
from apps.backtest.context import price
from apps.backtest.decide import decide
from apps.backtest.features import DRAW_BUCKETS, draw_buckets
from apps.backtest.recorded import TABLES, write_bronze
from apps.backtest.replay import REQUEST_COLUMNS, _normalise, replay
from apps.backtest.run import backtest, example_candidate
from bench.harness import write_result
from shared.guardrails.pii import scan_pii
from shared.policy.config import GatewayPolicy, load_policy, parse_policy
from shared.traffic import workload
from streamgate.catalog import default_catalog
from streamgate.config import Settings, load_settings
from streams.guardrails.budgets import AdmittedUsage, NoUsage, budget_decision
from streams.guardrails.stage import guard_request
from streams.route.health import StaticHealth
from streams.route.router import RouteDecision, route_request
from streams.validate.rules import validate_request

N = 1_000_000
POOL = 50_000
SAMPLE = 20_000
START_MS = int(datetime(2026, 11, 30, tzinfo=UTC).timestamp() * 1000)
SPAN_MS = 2 * 86_400_000
GOAL_S = 60.0
VERSION = "2026-11-24.1"


def _pool(live: GatewayPolicy, size: int) -> list[dict[str, Any]]:
    """Pool requests as the live path left them: its decision, the redacted event, what PII it found."""
    catalog, health, rng = default_catalog(), StaticHealth(), random.Random(5)
    out = []
    for request in workload.requests(size, seed=11, run_id="pool"):
        event = request.to_event()
        item: dict[str, Any] = {
            "event": event,
            "stored": None,
            "target": None,
            "reason": None,
            "entities": [],
        }
        rejection = validate_request(event, live, catalog)
        if rejection is None:
            guarded = guard_request(event, live, scan_pii, NoUsage(), event["created_at"])
            for verdict in guarded.verdicts:
                if verdict["guardrail"] == "pii":
                    item["entities"] = verdict["entities"]
            rejection = guarded.rejection
            if guarded.event is not None:
                item["stored"] = guarded.event
                routed = route_request(guarded.event, live, health, rng)
                if isinstance(routed, RouteDecision):
                    item["target"] = routed.targets[0]
                else:
                    rejection = routed
        item["reason"] = rejection.reason_code if rejection is not None else None
        out.append(item)
    return out


def _maps(event: dict[str, Any]) -> dict[str, Any]:
    return {
        **event,
        "tags": list((event.get("tags") or {}).items()),
        "metadata": list((event.get("metadata") or {}).items()),
    }


def _tile(
    rows: list[dict[str, Any]],
    name: str,
    picks: np.ndarray,
    ids: pa.Array,
    times: np.ndarray,
    time_columns: tuple[str, ...],
) -> pa.Table:
    """Pool rows (dicts) -> Arrow once, then `take` to the sampled requests with their own ids and times."""
    table = pa.Table.from_pylist(rows, schema=TABLES[name].event_schema()).take(pa.array(picks))
    ms = pa.array(times, pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
    for column in ("request_id", "trace_id", *time_columns):
        if column in table.column_names:
            value = ids if column in ("request_id", "trace_id") else ms
            table = table.set_column(table.column_names.index(column), column, value)
    return table


def _build(settings: Settings, live: GatewayPolicy, n: int, pool_size: int) -> dict[str, int]:
    pool = _pool(live, pool_size)
    rng = np.random.default_rng(3)
    picks = rng.integers(0, len(pool), n)
    times = np.sort(START_MS + rng.integers(0, SPAN_MS, n))
    ids = pa.array([f"{i:08x}-bt-{v:012x}" for i, v in enumerate(rng.integers(0, 2**48, n))], pa.string())
    stored = np.array([p["stored"] is not None for p in pool])
    admitted = np.array([p["target"] is not None for p in pool])
    # tokens and cost per pool request (the provider's usage, priced at the catalog)
    chars = np.array([sum(len(m["content"]) for m in p["event"]["messages"]) for p in pool])
    completion = np.random.default_rng(4).integers(20, 400, len(pool))
    targets = np.array(
        [f"{p['target'].provider}/{p['target'].model}" if p["target"] else "" for p in pool], dtype=object
    )
    costs = price(
        default_catalog(),
        targets,
        targets,
        np.full(len(pool), START_MS),
        (chars + 3) // 4,
        completion,
        np.zeros(len(pool), np.int64),
    ).cost_nanousd
    written: dict[str, int] = {}

    def land(name: str, rows: list[dict[str, Any]], mask: np.ndarray, *time_columns: str) -> None:
        sel = mask[picks]
        table = _tile(
            rows,
            name,
            np.searchsorted(np.flatnonzero(mask), picks[sel]),
            ids.filter(pa.array(sel)),
            times[sel],
            time_columns,
        )
        written[name] = write_bronze(settings, name, table)

    land("requests", [_maps(p["stored"]) for p in pool if p["stored"] is not None], stored, "created_at")
    land(
        "routed",
        [
            {
                **_maps(p["stored"]),
                "requested_model": p["stored"]["model"],
                "strategy": "single",
                "targets": [p["target"].model_dump()],
                "routing_config_version": VERSION,
                "policy_version": VERSION,
                "guardrail_actions": [],
                "routed_at": p["event"]["created_at"],
            }
            for p in pool
            if p["target"] is not None
        ],
        admitted,
        "created_at",
        "routed_at",
    )
    land(
        "responses",
        [_response(p, int(c), int(k)) for p, c, k in zip(pool, costs, completion, strict=True)],
        np.ones(len(pool), bool),
        "created_at",
        "completed_at",
    )
    land(
        "telemetry",
        [
            _telemetry(p, int(c), int(h), int(k))
            for p, c, h, k in zip(pool, costs, chars, completion, strict=True)
            if p["target"] is not None
        ],
        admitted,
        "started_at",
        "ended_at",
    )
    found = np.array([bool(p["entities"]) and p["stored"] is not None for p in pool])
    land(
        "verdicts",
        [
            {
                "event_id": f"v{i}",
                "request_id": p["event"]["request_id"],
                "team": p["event"]["team"],
                "stage": "input",
                "guardrail": "pii",
                "action": "redact",
                "entities": p["entities"],
                "policy_version": VERSION,
                "reason": None,
                "created_at": p["event"]["created_at"],
            }
            for i, p in enumerate(pool)
            if found[i]
        ],
        found,
        "created_at",
    )
    return written


def _response(p: dict[str, Any], cost: int, completion: int) -> dict[str, Any]:
    e, t = p["event"], p["target"]
    return {
        "request_id": e["request_id"],
        "trace_id": e["trace_id"],
        "team": e["team"],
        "project": e["project"],
        "api_key_id": e["api_key_id"],
        "status": "ok" if t else "rejected",
        "reason_code": p["reason"],
        "message": None,
        "content": None,
        "tool_calls_json": None,
        "finish_reason": None,
        "provider": t.provider if t else None,
        "model": t.model if t else None,
        "target_index": 0 if t else None,
        "cache_hit": False,
        "cache_kind": None,
        "usage": {
            "prompt_tokens": 0,
            "completion_tokens": completion if t else 0,
            "cached_tokens": 0,
            "reasoning_tokens": 0,
        },
        "cost_nanousd": cost if t else 0,
        "latency_ms": 100.0,
        "created_at": e["created_at"],
        "completed_at": e["created_at"],
    }


def _telemetry(p: dict[str, Any], cost: int, chars: int, completion: int) -> dict[str, Any]:
    e, t = p["event"], p["target"]
    return {
        "event_id": e["request_id"],
        "request_id": e["request_id"],
        "trace_id": e["trace_id"],
        "attempt": 0,
        "fallback_index": 0,
        "team": e["team"],
        "project": e["project"],
        "api_key_id": e["api_key_id"],
        "user_id": None,
        "provider": t.provider,
        "model": t.model,
        "region": t.region,
        "status": "ok",
        "error_class": None,
        "http_status": 200,
        "stream": False,
        "prompt_tokens": (chars + 3) // 4,
        "completion_tokens": completion,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "usage_source": "provider",
        "latency_ms": 100.0,
        "ttft_ms": None,
        "cache_hit": False,
        "cache_kind": None,
        "cost_nanousd": cost,
        "price_version": None,
        "routing_config_version": VERSION,
        "tags": [],
        "started_at": e["created_at"],
        "ended_at": e["created_at"],
    }


def _candidate(live: GatewayPolicy) -> GatewayPolicy:
    doc = example_candidate(live).model_dump(mode="json")
    doc["budgets"]["marketing"] = {"requests_per_minute": 40}
    return parse_policy(doc, "bench candidate")


def _per_event(
    settings: Settings,
    window: history.Window,
    live: GatewayPolicy,
    candidate: GatewayPolicy,
    sample_ids: pa.Array,
) -> tuple[float, float, int, dict[str, tuple[str, str]]]:
    """(seconds, requests, per request the candidate's (reason, target)) by the live functions per event."""
    catalog, health = default_catalog(), StaticHealth()
    found = history.findings(settings, window)
    started, cpu = time.perf_counter(), time.process_time()
    rows: list[dict[str, Any]] = []
    for batch in history.request_batches(settings, window, REQUEST_COLUMNS, ids=sample_ids):
        rows += batch.to_pylist()
    rows.sort(key=lambda r: r["created_at"])
    entities = history.join(pa.array([r["request_id"] for r in rows], pa.string()), found)[
        "entities"
    ].to_pylist()
    draws = draw_buckets(pa.array([r["request_id"] for r in rows], pa.string()))
    decided: dict[str, tuple[str, str]] = {}
    usage = {id(p): AdmittedUsage(NoUsage()) for p in (live, candidate)}
    for row, kinds, bucket in zip(rows, entities, draws, strict=True):
        event = _normalise(row)
        kinds_t = tuple(filter(None, (kinds or "").split("|")))
        for policy in (live, candidate):
            d = decide(event, policy, catalog, kinds_t, health, (int(bucket) + 0.5) / DRAW_BUCKETS)
            if not d.pre_budget:  # timed like the replay's budget pass (state from the sample only)
                budget_decision(event, policy, usage[id(policy)], event["created_at"])
            if policy is candidate:
                decided[event["request_id"]] = (d.reason, d.target)
    return time.perf_counter() - started, time.process_time() - cpu, len(rows), decided


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.backtest", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=N)
    parser.add_argument("--pool", type=int, default=POOL)
    args = parser.parse_args(argv)
    live = load_policy()
    candidate = _candidate(live)
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings().model_copy(update={"state_dir": Path(tmp)})
        t0 = time.perf_counter()
        written = _build(settings, live, args.requests, args.pool)
        build_s = time.perf_counter() - t0
        until = START_MS + SPAN_MS
        window = history.Window(START_MS, until)
        load = os.getloadavg()[0]
        t0, c0 = time.perf_counter(), time.process_time()
        summary = backtest(settings, candidate, live=live, since="2026-11-30", until_ms=until)
        vector_s, vector_cpu_s = time.perf_counter() - t0, time.process_time() - c0
        replayed = replay(settings, window, live, candidate)
        stored_ids = replayed.rows["request_id"].filter(pa.array(replayed.stored))
        sample = stored_ids.take(
            pa.array(
                np.random.default_rng(9).choice(len(stored_ids), min(SAMPLE, len(stored_ids)), replace=False)
            )
        )
        per_event_s, per_event_cpu_s, per_event_n, decided = _per_event(
            settings, window, live, candidate, sample
        )
    index = {rid: i for i, rid in enumerate(replayed.rows["request_id"].to_pylist()) if rid in decided}
    c = replayed.candidate
    # budgets depend on all traffic, the sample's on 2% of it: compare the decisions budgets did not take
    compared = [rid for rid in decided if c.reason[index[rid]] != "budget_exceeded"]
    agree = sum(1 for rid in compared if (c.reason[index[rid]], c.target[index[rid]]) == decided[rid])
    stored_n = int(replayed.stored.sum())
    # rates on CPU seconds (the machine is shared: wall time depends on the other processes) and wall
    vector_rate, event_rate = args.requests / vector_cpu_s, per_event_n / per_event_cpu_s
    event_wall_rate = per_event_n / per_event_s
    result = {
        "requests": args.requests,
        "pool": args.pool,
        "stored": stored_n,
        "written": written,
        "build_s": round(build_s, 1),
        "backtest_wall_s": round(vector_s, 2),
        "backtest_cpu_s": round(vector_cpu_s, 2),
        "goal_s": GOAL_S,
        "meets_goal_wall": vector_s < GOAL_S,
        "meets_goal_cpu": vector_cpu_s < GOAL_S,
        "signatures": summary["signatures"],
        "vectorised_requests_per_cpu_s": round(vector_rate),
        "per_event_requests_per_cpu_s": round(event_rate),
        "per_event_requests_per_wall_s": round(event_wall_rate),
        "per_event_projected_cpu_s": round(stored_n / event_rate, 1),
        "ratio_cpu": round(vector_rate / event_rate, 1),
        "ratio_wall": round((args.requests / vector_s) / event_wall_rate, 1),
        "sample": per_event_n,
        "sample_compared": len(compared),
        "sample_decisions_equal": agree,
        "changes": {k: summary[k] for k in ("newly_rejected", "newly_allowed", "rerouted")},
        "cost_usd": {k: summary[k] for k in ("actual_cost_usd", "projected_cost_usd")},
        "load_average_1m": round(load, 2),
    }
    met = "met" if vector_s < GOAL_S else "NOT met"
    rows = [
        (
            "recorded requests (stored / pool of distinct workload requests)",
            f"{args.requests:,} ({stored_n:,} / {args.pool:,})",
        ),
        (
            "`streamgate policy backtest`, whole run: wall / CPU",
            f"{vector_s:.1f} s / {vector_cpu_s:.1f} s (goal < {GOAL_S:.0f} s wall: {met})",
        ),
        ("distinct decision signatures", f"{summary['signatures']:,}"),
        ("vectorised: requests per CPU second", f"{vector_rate:,.0f}"),
        (
            "per-event baseline (live functions per row, 20,000 sampled): requests per CPU second",
            f"{event_rate:,.0f}",
        ),
        ("per-event baseline projected to the stored requests", f"{stored_n / event_rate:,.0f} CPU s"),
        (
            "ratio vectorised / per-event (CPU; wall)",
            f"{vector_rate / event_rate:.1f}x; {(args.requests / vector_s) / event_wall_rate:.1f}x",
        ),
        (
            "sample decisions equal to the vectorised ones (budget rejections excluded)",
            f"{agree:,} / {len(compared):,}",
        ),
        ("load average (1 min) at start", f"{load:.2f} on {os.cpu_count()} cores"),
    ]
    write_result("backtest", result, rows)
    for k, v in rows:
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
