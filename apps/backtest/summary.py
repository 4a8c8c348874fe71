"""A replay's diff as numbers people and CI read: per team and project, reasons, costs, budgets, a sample.

Every request of the window falls in exactly one class: newly rejected, newly allowed, re-routed (both
admit it, to different first targets), rejection reason changed, or unchanged (which includes every
request that was not replayed because its content was never stored).
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from apps.backtest.history import Window, live_versions, to_ms
from apps.backtest.replay import BudgetEffect, Replayed
from shared.guardrails.pii import find_pii
from shared.policy.config import GatewayPolicy

CLASSES = ("newly_rejected", "newly_allowed", "rerouted", "reason_changed")
APPROXIMATIONS = (
    "Content redacted before it was stored is judged as stored (deny patterns and blocked topics see "
    "placeholders); PII rules are judged from the entity types the live scanner recorded, which is exact.",
    "Requests the live path rejected before their content was stored (validation, access, budgets, PII "
    "blocks, content rules) are not replayed: they keep their live outcome (`not_replayed`).",
    "Budgets are replayed from zero usage at the window's start; spend before the window is not counted. "
    "API keys' own limits (rpm, max_budget_usd) are not part of a policy and are not replayed.",
    "Load-balanced picks are re-drawn per request from its id (1/256 resolution), the same draw for both "
    "policies; latency routing reads provider health from the feature tables at the request's time.",
    "A re-routed request is priced from its recorded tokens at the new target's price at its time; when "
    "the tokenizer family changes the tokens are scaled by characters per token (estimated, no tokenizer "
    "run). A newly allowed request has no recorded tokens: prompt from its stored text, completion from "
    "the window's mean (estimated).",
)


def _usd(nanos: int | np.integer[Any]) -> float:
    return round(int(nanos) / 1e9, 6)


def _iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def classify(r: Replayed) -> np.ndarray:
    """The class of each request ('' unchanged)."""
    b, c, s = r.live, r.candidate, r.stored
    out = np.full(len(s), "", dtype=object)
    out[s & ~b.admitted & ~c.admitted & (b.reason != c.reason)] = "reason_changed"
    out[s & b.admitted & c.admitted & (b.target != c.target)] = "rerouted"
    out[s & ~b.admitted & c.admitted] = "newly_allowed"
    out[s & b.admitted & ~c.admitted] = "newly_rejected"
    return out


def _counts(table: pa.Table, keys: list[str]) -> list[dict[str, Any]]:
    grouped: list[dict[str, Any]] = (
        table.group_by(keys).aggregate([("n", "sum"), ("actual", "sum"), ("projected", "sum")]).to_pylist()
    )
    return grouped


def _detail(kind: np.ndarray, r: Replayed) -> np.ndarray:
    """Per changed request: the reason code or the move it is counted under."""
    b, c = r.live, r.candidate
    detail = np.full(len(kind), "", dtype=object)
    for name, value in (
        ("newly_rejected", c.reason),
        ("newly_allowed", b.reason),
        ("reason_changed", b.reason + " -> " + c.reason),
        ("rerouted", b.target + " -> " + c.target),
    ):
        sel = kind == name
        detail[sel] = value[sel]
    return detail


def by_team(r: Replayed, kind: np.ndarray) -> dict[str, Any]:
    """Counts and costs per team and project, with each change's reason codes (columnar group-bys)."""
    rows = pa.table(
        {
            "team": r.rows["team"],
            "project": r.rows["project"],
            "kind": pa.array(kind, pa.string()),
            "detail": pa.array(_detail(kind, r), pa.string()),
            "n": pa.array(np.ones(len(kind), np.int64)),
            "actual": pa.array(r.actual_cost_nanousd),
            "projected": pa.array(r.candidate.cost_nanousd),
        }
    )
    teams: dict[str, Any] = {}

    def blank() -> dict[str, Any]:
        return {
            "requests": 0,
            **dict.fromkeys(CLASSES, 0),
            "actual_cost_usd": 0.0,
            "projected_cost_usd": 0.0,
            "reasons": {},
            "reroutes": {},
        }

    for row in _counts(rows, ["team", "project", "kind"]):
        team = teams.setdefault(row["team"], {**blank(), "projects": {}})
        project = team["projects"].setdefault(row["project"], blank())
        for scope in (team, project):
            scope["requests"] += row["n_sum"]
            scope["actual_cost_usd"] = round(scope["actual_cost_usd"] + _usd(row["actual_sum"]), 6)
            scope["projected_cost_usd"] = round(scope["projected_cost_usd"] + _usd(row["projected_sum"]), 6)
            if row["kind"]:
                scope[row["kind"]] += row["n_sum"]
    changed = rows.filter(pc.not_equal(rows["kind"], ""))
    for row in changed.group_by(["team", "project", "kind", "detail"]).aggregate([("n", "sum")]).to_pylist():
        team = teams[row["team"]]
        for scope in (team, team["projects"][row["project"]]):
            bucket = (
                scope["reroutes"]
                if row["kind"] == "rerouted"
                else scope["reasons"].setdefault(row["kind"], {})
            )
            bucket[row["detail"]] = bucket.get(row["detail"], 0) + row["n_sum"]
    return teams


def _fidelity(r: Replayed) -> dict[str, Any]:
    """How often the live policy's replay reproduces what the live path actually decided."""
    s = r.stored
    live_admitted = pc.is_valid(r.rows["live_target"]).to_numpy(zero_copy_only=False)
    status_same = s & (r.live.admitted == live_admitted)
    balanced = pc.fill_null(pc.equal(r.rows["strategy"], "loadbalance"), False).to_numpy(zero_copy_only=False)
    live_target = pc.fill_null(r.rows["live_target"], "").to_numpy(zero_copy_only=False)
    comparable = s & r.live.admitted & live_admitted & ~balanced
    target_same = comparable & (r.live.target == live_target)
    replayed = int(s.sum())
    return {
        "replayed": replayed,
        "status_matches": int(status_same.sum()),
        "status_share": round(float(status_same.sum()) / replayed, 6) if replayed else 1.0,
        "target_compared": int(comparable.sum()),
        "target_matches": int(target_same.sum()),
        "status_mismatches": {
            str(k): int(v)
            for k, v in zip(
                *np.unique(r.live.reason[s & ~status_same].astype(str), return_counts=True), strict=True
            )
        },
    }


def _budget_effects(r: Replayed) -> list[dict[str, Any]]:
    live, cand = r.budgets.get("live", {}), r.budgets.get("candidate", {})
    out = []
    for scope in sorted(set(live) | set(cand)):
        c, b = cand.get(scope, BudgetEffect(scope)), live.get(scope, BudgetEffect(scope))
        out.append(
            {
                "scope": scope,
                "rejections": c.rejections,
                "first_hit_at": _iso(c.first_hit_ms),
                "first_warning_at": _iso(c.first_warning_ms),
                "live_replay_rejections": b.rejections,
                "live_replay_first_hit_at": _iso(b.first_hit_ms),
            }
        )
    return out


def redact_all(text: str) -> str:
    """Every entity the scanner finds replaced by its type, whatever a policy allowed to be stored."""
    pieces, last = [], 0
    for kind, start, end in find_pii(text):
        pieces += [text[last:start], f"<{kind}>"]
        last = end
    return "".join(pieces) + text[last:]


def sample_rows(kind: np.ndarray, size: int) -> list[int]:
    """Up to `size` changed requests, spread over the classes, earliest first within each."""
    picks: list[int] = []
    per = max(1, size // len(CLASSES))
    for name in CLASSES:
        picks += list(np.flatnonzero(kind == name)[:per])
    for i in np.flatnonzero(kind != ""):
        if len(picks) >= size:
            break
        if i not in picks:
            picks.append(int(i))
    return [int(i) for i in picks[:size]]


def summarise(
    r: Replayed,
    live: GatewayPolicy,
    candidate: GatewayPolicy,
    window: Window,
    texts: dict[str, list[str]] | None = None,
    sample: list[int] | None = None,
) -> dict[str, Any]:
    kind = classify(r)
    n = len(kind)
    counts = {name: int((kind == name).sum()) for name in CLASSES}
    live_reasons = pc.fill_null(r.rows["reason_code"], "").to_numpy(zero_copy_only=False)
    not_replayed = ~r.stored
    detail = _detail(kind, r)
    out: dict[str, Any] = {
        "candidate": {"version": candidate.version, "fingerprint": candidate.fingerprint},
        "live": {"version": live.version, "fingerprint": live.fingerprint},
        "window": {"since": _iso(window.since_ms), "until": _iso(window.until_ms), "team": window.team},
        "requests": n,
        "replayed": int(r.stored.sum()),
        **counts,
        **{f"{name}_share": round(counts[name] / n, 6) if n else 0.0 for name in CLASSES},
        "changed": int((kind != "").sum()),
        "actual_cost_usd": _usd(r.actual_cost_nanousd.sum()),
        "projected_cost_usd": _usd(r.candidate.cost_nanousd.sum()),
        "cost_delta_usd": _usd(r.candidate.cost_nanousd.sum() - r.actual_cost_nanousd.sum()),
        "estimated_cost_requests": int(r.candidate.estimated.sum()),
        "unpriced_requests": int(r.candidate.unpriced.sum()),
        "redacted_content_requests": int(r.redacted.sum()),
        "not_replayed": {
            "count": int(not_replayed.sum()),
            "by_live_reason": {
                (str(k) or "none"): int(v)
                for k, v in zip(
                    *np.unique(live_reasons[not_replayed].astype(str), return_counts=True), strict=True
                )
            },
        },
        "policy_versions_recorded": live_versions(r.rows),
        "fidelity": _fidelity(r),
        "by_team": by_team(r, kind),
        "budget_effects": _budget_effects(r),
        "signatures": r.signatures,
        "approximations": list(APPROXIMATIONS),
    }
    rows = r.rows
    out["sample"] = [
        {
            "request_id": rows["request_id"][i].as_py(),
            "team": rows["team"][i].as_py(),
            "project": rows["project"][i].as_py(),
            "change": kind[i],
            "detail": detail[i],
            "created_at": _iso(int(to_ms(rows["created_at"].slice(i, 1))[0])),
            "estimated_cost": bool(r.candidate.estimated[i]),
            "text": [redact_all(t)[:300] for t in (texts or {}).get(rows["request_id"][i].as_py(), [])],
        }
        for i in (sample or [])
    ]
    return out


_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_ARITH: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


class FailOnError(ValueError):
    """A --fail-on expression that is not a comparison over the summary's numbers."""


def fails(expression: str, summary: dict[str, Any]) -> bool:
    """Evaluate `newly_rejected_share > 0.01 or cost_delta_usd > 100` over the summary's top-level
    numbers: comparisons, and/or/not, + - * /, numbers and names; nothing else is evaluated."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise FailOnError(f"--fail-on {expression!r}: {exc.msg}") from exc
    numbers = {k: v for k, v in summary.items() if isinstance(v, int | float) and not isinstance(v, bool)}

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.BoolOp):
            results = [value(v) for v in node.values]
            return all(results) if isinstance(node.op, ast.And) else any(results)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return not value(node.operand)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        if isinstance(node, ast.Compare):
            left, ok = value(node.left), True
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = value(right_node)
                if type(op) not in _COMPARE:
                    raise FailOnError(f"--fail-on: operator {type(op).__name__} is not supported")
                ok, left = ok and _COMPARE[type(op)](left, right), right
            return ok
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
            return _ARITH[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in numbers:
                raise FailOnError(f"--fail-on: unknown name {node.id!r}; known: {', '.join(sorted(numbers))}")
            return numbers[node.id]
        raise FailOnError(f"--fail-on: {ast.dump(node)[:60]} is not supported")

    return bool(value(tree.body))
