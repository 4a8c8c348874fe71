"""Replay a window of recorded traffic through two policies: the live one and a candidate.

Both policies decide every stored request by the live stage functions (apps/backtest/decide.py), once
per signature (apps/backtest/features.py), with the same replayed state (usage, health, load-balance
draws). Comparing the candidate with the live policy's replay, not with the raw record, keeps what a
replay cannot reproduce exactly (a budget's timing, a load-balance draw) out of the diff: an identical
candidate changes nothing by construction, and how well the live replay matches what the live path
actually decided is reported beside it (`fidelity`).

Costs: a request whose first target the candidate keeps costs what it cost (telemetry, every attempt).
A re-routed one is priced from its recorded tokens at the new target's price at its time (rescaled
when the tokenizer family differs: marked estimated). A newly allowed one has no recorded tokens: its
prompt tokens are estimated from the stored text and its completion from the window's mean (estimated).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from apps.backtest import history
from apps.backtest.context import PointInTimeHealth, price, recorded_health
from apps.backtest.decide import Decision, FixedDraw, decide
from apps.backtest.features import (
    DRAW_BUCKETS,
    draw_buckets,
    map_text,
    message_sizes,
    param_columns,
    signature,
    size_edges,
)
from schemas.snapshots import UsageSnapshot
from shared.guardrails.content import check_content
from shared.guardrails.outcome import estimate_tokens
from shared.policy.config import GatewayPolicy, GuardrailConfig
from shared.usage.windows import month_start_ms
from streamgate.catalog import ModelCatalog, default_catalog
from streamgate.config import Settings
from streams.guardrails.budgets import AdmittedUsage, budget_decision
from streams.route.health import ProviderHealth
from streams.route.router import _weighted_order

REQUEST_COLUMNS = [
    "request_id",
    "trace_id",
    "session_id",
    "team",
    "project",
    "api_key_id",
    "user_id",
    "model",
    "messages",
    "params",
    "tags",
    "metadata",
    "region",
    "reply_partition",
    "deadline_at",  # absent from tables written before Request v4: read where present
    "created_at",
]


@dataclass
class Outcome:
    """One policy's decision for each stored request (arrays aligned to `Replayed.rows`)."""

    admitted: np.ndarray
    stage: np.ndarray
    reason: np.ndarray
    target: np.ndarray
    pre_budget: np.ndarray
    cost_nanousd: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    estimated: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    unpriced: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


@dataclass
class BudgetEffect:
    scope: str
    rejections: int = 0
    first_hit_ms: int | None = None
    first_warning_ms: int | None = None


@dataclass
class Replayed:
    """The window's requests (`rows`: one per answered request) with both policies' decisions."""

    rows: pa.Table
    stored: np.ndarray  # bool: the request's content was stored, so it was replayed
    live: Outcome
    candidate: Outcome
    actual_cost_nanousd: np.ndarray
    redacted: np.ndarray  # bool: its stored text was redacted before storage
    signatures: int
    budgets: dict[str, dict[str, BudgetEffect]]


@dataclass
class _Group:
    event: dict[str, Any]
    entities: tuple[str, ...]
    draw: float


def _content_rules(policy: GatewayPolicy) -> tuple[Any, ...]:
    g = policy.guardrails
    return tuple(g.deny_patterns), tuple(g.blocked_topics), g.max_prompt_tokens


#: text lists are keyed by their texts joined with _BETWEEN, each text's _ESCAPE doubled: an exact key
_ESCAPE, _BETWEEN = "\x1f", "\x1f0"


def _content_codes(messages: pa.Array, rules: list[GuardrailConfig]) -> pa.Array:
    """Per request, the content check's reason code under each of `rules` ('' when clean), computed by
    the live `check_content` once per distinct text list; the lists are keyed and deduplicated with Arrow
    (no Python loop over rows). Only needed when the policies' content rules differ: otherwise the stored
    requests all passed them live."""
    offsets = messages.offsets  # a sliced list array's offsets index its whole child
    contents = pc.fill_null(pc.struct_field(messages.values, "content"), "")
    texts = pa.ListArray.from_arrays(offsets, contents)
    escaped = pa.ListArray.from_arrays(offsets, pc.replace_substring(contents, _ESCAPE, _ESCAPE * 2))
    keys = pc.dictionary_encode(
        pc.binary_join_element_wise(  # the count tells [] from [""]
            pc.cast(pc.list_value_length(texts), pa.string()), pc.binary_join(escaped, _BETWEEN), ":"
        )
    )
    indices = keys.indices.to_numpy(zero_copy_only=False)
    _, first = np.unique(indices, return_index=True)  # dictionary entries in order, each's first row
    codes = []
    for row in first:
        found = [check_content(texts[int(row)].as_py(), r) for r in rules]
        codes.append(",".join(f.reason_code if f else "" for f in found))
    return pa.array(codes, pa.string()).take(keys.indices)


def _normalise(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row as the request path's event dict: maps as dicts, times as ms, the live guard's own
    metadata (`guard.*`, added by the path being replayed) removed."""
    row["tags"] = dict(row.get("tags") or [])
    row["metadata"] = {k: v for k, v in (row.get("metadata") or []) if not k.startswith("guard.")}
    for name in ("created_at", "deadline_at"):
        at = row.get(name)
        if at is not None:
            row[name] = int(at.timestamp() * 1000) if hasattr(at, "timestamp") else int(at)
    return row


@dataclass
class _Stored:
    ids: list[pa.Array] = field(default_factory=list)
    sigs: list[pa.Array] = field(default_factory=list)
    chars: list[np.ndarray] = field(default_factory=list)
    redacted: list[pa.Array] = field(default_factory=list)
    groups: dict[str, _Group] = field(default_factory=dict)


def _pick_classes(
    models: pa.Array, draws: np.ndarray, policies: tuple[GatewayPolicy, ...]
) -> list[np.ndarray]:
    """Per policy, which order a load-balanced route puts its targets in for each request's draw: the
    live `_weighted_order` run once per draw bucket and route, so requests whose draws give the same
    orders under every policy share a signature (a 3:1 route has 2 orders, not 256 draws)."""
    classes = []
    for policy in policies:
        column = np.full(len(draws), -1, np.int64)
        for model, route in policy.routing.routes.items():
            if route.strategy != "loadbalance":
                continue
            orders: dict[tuple[tuple[str, str, str], ...], int] = {}
            lut = np.array(
                [
                    orders.setdefault(
                        tuple(
                            (t.provider, t.model, t.region)
                            for t in _weighted_order(route.targets, FixedDraw((b + 0.5) / DRAW_BUCKETS))
                        ),
                        len(orders),
                    )
                    for b in range(DRAW_BUCKETS)
                ]
            )
            on = pc.equal(models, model).to_numpy(zero_copy_only=False) & (draws >= 0)
            column[on] = lut[draws[on]]
        classes.append(column)
    return classes


def _batch_signatures(
    batch: pa.RecordBatch, entities: pa.Array, policies: tuple[GatewayPolicy, ...], bounds: np.ndarray | None
) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """(signature, draw bucket, prompt characters) per request of a batch."""
    models = batch["model"]
    created = history.to_ms(batch["created_at"])
    prompt_chars, content_tokens, count = message_sizes(batch["messages"])
    edges = size_edges(policies)
    chars_key, tokens_key = (
        (prompt_chars, content_tokens)
        if edges is None
        else (
            np.searchsorted(edges[0], prompt_chars, side="right"),
            np.searchsorted(edges[1], content_tokens, side="right"),
        )
    )
    latency = {m for p in policies for m, r in p.routing.routes.items() if r.strategy == "latency"}
    balanced = {m for p in policies for m, r in p.routing.routes.items() if r.strategy == "loadbalance"}
    draws = np.where(
        pc.is_in(models, pa.array(sorted(balanced), pa.string())).to_numpy(zero_copy_only=False),
        draw_buckets(batch["request_id"]),
        -1,
    )
    picks = _pick_classes(models, draws, policies)
    epochs = np.full(len(created), -1, np.int64)
    if bounds is not None:
        on_latency = pc.is_in(models, pa.array(sorted(latency), pa.string())).to_numpy(zero_copy_only=False)
        epochs = np.where(on_latency, np.searchsorted(bounds, created, side="right"), -1)
    columns = [
        batch["team"],
        batch["project"],
        batch["api_key_id"],
        models,
        pc.fill_null(batch["region"], ""),
        *param_columns(batch["params"]).values(),
        map_text(batch["tags"]),
        map_text(batch["metadata"], "guard."),
        pc.fill_null(entities, ""),
    ]
    numbers = [chars_key, tokens_key, count, *picks, epochs]
    columns += [pa.array(n).cast(pa.string()) for n in numbers]
    if len({_content_rules(p) for p in policies}) > 1:
        columns.append(
            _content_codes(
                batch["messages"].combine_chunks()
                if isinstance(batch["messages"], pa.ChunkedArray)
                else batch["messages"],
                [p.guardrails for p in policies],
            )
        )
    return signature(columns), draws, prompt_chars


def _read_stored(
    settings: Settings,
    window: history.Window,
    found: pa.Table,
    policies: tuple[GatewayPolicy, ...],
    bounds: np.ndarray | None,
) -> _Stored:
    """One pass over the stored requests in batches: signatures, and one full event per new signature."""
    out = _Stored()
    for batch in history.request_batches(settings, window, REQUEST_COLUMNS):
        if batch.num_rows == 0:
            continue
        entities = history.join(batch["request_id"], found)["entities"]
        sigs, draws, chars = _batch_signatures(batch, entities, policies, bounds)
        encoded = pc.dictionary_encode(sigs)
        _, first = np.unique(encoded.indices.to_numpy(zero_copy_only=False), return_index=True)
        fresh = [i for i in first if encoded.dictionary[encoded.indices[i].as_py()].as_py() not in out.groups]
        if fresh:
            taken = batch.take(pa.array(fresh, pa.int64())).to_pylist()
            kinds = entities.take(pa.array(fresh, pa.int64())).to_pylist()
            for i, row, kind in zip(fresh, taken, kinds, strict=True):
                draw = (int(draws[i]) + 0.5) / DRAW_BUCKETS if draws[i] >= 0 else 0.5
                out.groups[str(sigs[i].as_py())] = _Group(
                    _normalise(row), tuple(filter(None, (kind or "").split("|"))), draw
                )
        out.ids.append(batch["request_id"])
        out.sigs.append(sigs)
        out.chars.append(chars)
        out.redacted.append(pc.is_valid(pc.map_lookup(batch["metadata"], pa.scalar("guard.pii"), "first")))
    return out


def _decide_groups(
    groups: list[_Group], policy: GatewayPolicy, catalog: ModelCatalog, health: ProviderHealth
) -> list[Decision]:
    decisions = []
    for group in groups:
        if isinstance(health, PointInTimeHealth):
            health.at_ms = group.event["created_at"]
        decisions.append(decide(group.event, policy, catalog, group.entities, health, group.draw))
    return decisions


def _outcome(decisions: list[Decision], gid: np.ndarray, stored: np.ndarray) -> Outcome:
    """Per-group decisions spread to the rows (`gid` -1: not stored, keeps no decision here)."""

    def column(values: list[Any], dtype: Any, empty: Any) -> np.ndarray:
        per_group = np.array([*values, empty], dtype=dtype)  # the last entry: rows without a group
        return per_group[np.where(stored, gid, len(values))]

    return Outcome(
        admitted=column([d.admitted for d in decisions], bool, False),
        stage=column([d.stage for d in decisions], object, ""),
        reason=column([d.reason for d in decisions], object, ""),
        target=column([d.target for d in decisions], object, ""),
        pre_budget=column([d.pre_budget for d in decisions], bool, True),
    )


class _Spend:
    """Spend so far per scope, today and this month, from what the replay admitted (a `UsageReader`)."""

    def __init__(self) -> None:
        self.day: dict[tuple[str, int], int] = {}
        self.month: dict[tuple[str, int], int] = {}

    def usage(self, scope: str, now_ms: int) -> UsageSnapshot:
        return UsageSnapshot(
            spend_today_nanousd=self.day.get((scope, now_ms // history.DAY_MS), 0),
            spend_month_nanousd=self.month.get((scope, month_start_ms(now_ms)), 0),
        )

    def add(self, scopes: list[str], cost: int, now_ms: int) -> None:
        for scope in scopes:
            day, month = (scope, now_ms // history.DAY_MS), (scope, month_start_ms(now_ms))
            self.day[day] = self.day.get(day, 0) + cost
            self.month[month] = self.month.get(month, 0) + cost


def _budgets(
    policy: GatewayPolicy,
    outcome: Outcome,
    events: list[dict[str, Any]],
    gid: np.ndarray,
    stored: np.ndarray,
    created: np.ndarray,
    columnar: bool = True,
) -> dict[str, BudgetEffect]:
    """Decide budgets in time order, as the live path does, against replayed usage: requests and tokens
    per minute from what was admitted (the live `AdmittedUsage`), spend from what was admitted and its
    cost under this policy. Rejections overwrite `outcome`; returns the effects per scope."""
    effects: dict[str, BudgetEffect] = {}
    if not policy.budgets:
        return effects
    teams = {s for s in policy.budgets if "/" not in s}
    scoped = stored & ~outcome.pre_budget
    groups_in_scope = np.array(
        [e["team"] in teams or f"{e['team']}/{e['api_key_id']}" in policy.budgets for e in events] + [False]
    )
    scoped &= groups_in_scope[np.where(stored, gid, len(events))]
    if columnar and _per_minute_only(policy):
        team_of = np.array([e["team"] for e in events] + [""], dtype=object)[
            np.where(stored, gid, len(events))
        ]
        return _rpm_budgets(policy, outcome, team_of, scoped, created)
    spend = _Spend()
    usage = AdmittedUsage(spend)
    for i in np.flatnonzero(scoped)[np.argsort(created[scoped], kind="stable")]:
        event, now = events[gid[i]], int(created[i])
        rejection, warnings = budget_decision(event, policy, usage, now)
        for warning in warnings:
            effect = effects.setdefault(warning.split(":", 1)[0], BudgetEffect(warning.split(":", 1)[0]))
            effect.first_warning_ms = effect.first_warning_ms or now
        if rejection is not None:
            scope = rejection.message.split(":", 1)[0]
            effect = effects.setdefault(scope, BudgetEffect(scope))
            effect.rejections += 1
            effect.first_hit_ms = effect.first_hit_ms or now
            outcome.admitted[i], outcome.stage[i], outcome.reason[i] = (
                False,
                rejection.stage,
                rejection.reason_code,
            )
            outcome.target[i] = ""
        elif outcome.admitted[i]:
            spend.add(
                [event["team"], f"{event['team']}/{event['api_key_id']}"], int(outcome.cost_nanousd[i]), now
            )
    return effects


def _per_minute_only(policy: GatewayPolicy) -> bool:
    """Whether every budget is a team's requests-per-minute limit and nothing else."""
    return all(
        "/" not in scope
        and limit.tokens_per_minute is None
        and limit.daily_nanousd is None
        and limit.monthly_nanousd is None
        for scope, limit in policy.budgets.items()
    )


def _rpm_budgets(
    policy: GatewayPolicy, outcome: Outcome, team_of: np.ndarray, scoped: np.ndarray, created: np.ndarray
) -> dict[str, BudgetEffect]:
    """`_budgets` for per-minute request limits per team, as columns: under `budget_decision` with
    `AdmittedUsage`, the k-th request of a team's minute sees k - 1 admitted before it (every earlier
    one was admitted, or it would not be k-th within the limit), so it is admitted iff k <= the limit,
    and warned iff soft_ratio * limit < k <= limit. Equal to the per-row loop (tested)."""
    effects: dict[str, BudgetEffect] = {}
    rows = np.flatnonzero(scoped)
    if not len(rows):
        return effects
    order = rows[np.argsort(created[rows], kind="stable")]
    names, codes = np.unique(team_of[order].astype(str), return_inverse=True)
    minute = created[order] // 60_000
    key = codes.astype(np.int64) * (1 << 40) + minute
    by_key = np.argsort(key, kind="stable")
    sorted_key = key[by_key]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_key)) + 1]
    lengths = np.diff(np.r_[starts, len(by_key)])
    k = np.empty(len(by_key), np.int64)
    k[by_key] = np.arange(len(by_key)) - np.repeat(starts, lengths) + 1
    limits = [policy.budgets[str(n)] for n in names]
    cap = np.array([lim.requests_per_minute or np.inf for lim in limits], dtype=np.float64)[codes]
    soft = np.array([lim.soft_ratio for lim in limits])[codes]
    over = k > cap
    warned = (soft * cap < k) & ~over
    hit = order[over]
    outcome.admitted[hit], outcome.stage[hit], outcome.reason[hit], outcome.target[hit] = (
        False,
        "guard",
        "budget_exceeded",
        "",
    )
    for code, name in enumerate(names):
        mine = codes == code
        if not (over[mine].any() or warned[mine].any()):
            continue
        effect = effects[str(name)] = BudgetEffect(str(name), rejections=int(over[mine].sum()))
        if over[mine].any():
            effect.first_hit_ms = int(created[order[mine & over]].min())
        if warned[mine].any():
            effect.first_warning_ms = int(created[order[mine & warned]].min())
    return effects


def _ints(table: pa.Table, name: str) -> np.ndarray:
    values: np.ndarray = pc.fill_null(table[name], 0).to_numpy().astype(np.int64)
    return values


def _costs(
    candidate: Outcome,
    live: Outcome,
    rows: pa.Table,
    tokens: pa.Table,
    actual: np.ndarray,
    prompt_chars: np.ndarray,
    catalog: ModelCatalog,
) -> None:
    """Fill both outcomes' cost columns (see the module doc)."""
    live.cost_nanousd = actual.copy()
    live.estimated = np.zeros(len(actual), bool)
    live.unpriced = np.zeros(len(actual), bool)
    cost = actual.copy()
    moved = candidate.admitted & (candidate.target != live.target)
    cost[~candidate.admitted] = 0
    prompt, completion, cached = (
        _ints(tokens, c) for c in ("prompt_tokens", "completion_tokens", "cached_tokens")
    )
    answered = completion > 0
    mean_completion = int(completion[answered].mean()) if answered.any() else 0
    unknown = moved & ~live.admitted  # newly allowed: nothing was recorded for it
    prompt = np.where(unknown, (prompt_chars + 3) // 4, prompt)
    completion = np.where(unknown, mean_completion, completion)
    served = pc.binary_join_element_wise(
        pc.fill_null(rows["provider"], ""), pc.fill_null(rows["model"], ""), "/"
    )
    served_np = pc.if_else(pc.equal(served, "/"), "", served).to_numpy(zero_copy_only=False)
    at = history.to_ms(rows["created_at"])
    sel = np.flatnonzero(moved)
    priced = price(
        catalog, candidate.target[sel], served_np[sel], at[sel], prompt[sel], completion[sel], cached[sel]
    )
    cost[sel] = priced.cost_nanousd
    candidate.cost_nanousd = cost
    candidate.estimated = np.zeros(len(actual), bool)
    candidate.estimated[sel] = priced.estimated | unknown[sel]
    candidate.unpriced = np.zeros(len(actual), bool)
    candidate.unpriced[sel] = priced.unpriced
    assert estimate_tokens(0) == 0  # the prompt estimate above is the live `estimate_tokens`, vectorised


def replay(
    settings: Settings,
    window: history.Window,
    live: GatewayPolicy,
    candidate: GatewayPolicy,
    catalog: ModelCatalog | None = None,
) -> Replayed:
    catalog = catalog or default_catalog()
    rows = history.answers(settings, window)
    ids = rows["request_id"].combine_chunks()
    rows = pa.Table.from_arrays(
        [*rows.columns, *history.join(ids, history.routed(settings, window, ids)).columns],
        names=[*rows.column_names, "live_target", "strategy", "policy_version"],
    )
    tokens = history.join(ids, history.attempts(settings, window, ids))
    health, bounds = recorded_health(settings)
    found = history.findings(settings, window, ids)
    read = _read_stored(settings, window, found, (live, candidate), bounds)
    stored_ids = (
        pa.concat_arrays([a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in read.ids])
        if read.ids
        else pa.array([], pa.string())
    )
    sigs = pa.concat_arrays(read.sigs) if read.sigs else pa.array([], pa.string())
    redacted_stored = pa.concat_arrays(read.redacted) if read.redacted else pa.array([], pa.bool_())
    at = pc.index_in(ids, value_set=stored_ids)  # first occurrence wins: a twice-stored request counts once
    stored = pc.is_valid(at).to_numpy(zero_copy_only=False)
    take = pc.fill_null(at, 0)
    encoded = pc.dictionary_encode(sigs)
    names = encoded.dictionary.to_pylist()
    groups = [read.groups[str(s)] for s in names]
    gid = np.where(
        stored, encoded.indices.to_numpy(zero_copy_only=False)[take.to_numpy()] if len(sigs) else 0, -1
    )
    outcomes = []
    for policy in (live, candidate):
        outcomes.append(_outcome(_decide_groups(groups, policy, catalog, health), gid, stored))
    b, c = outcomes
    actual = _ints(tokens, "cost_nanousd")
    chars = np.concatenate(read.chars) if read.chars else np.zeros(0, np.int64)
    prompt_chars = np.where(stored, chars[take.to_numpy()] if len(chars) else 0, 0)
    created = history.to_ms(rows["created_at"])
    events = [g.event for g in groups]
    # budgets: the live replay first (its costs are the recorded ones), then the candidate, whose spend
    # depends on its routing, so its costs are computed before and after its budget pass
    b.cost_nanousd = actual.copy()
    budgets = {"live": _budgets(live, b, events, gid, stored, created)}
    _costs(c, b, rows, tokens, actual, prompt_chars, catalog)
    budgets["candidate"] = _budgets(candidate, c, events, gid, stored, created)
    _costs(c, b, rows, tokens, actual, prompt_chars, catalog)
    c.cost_nanousd[~stored] = actual[~stored]  # not replayed: as recorded
    redacted = np.zeros(len(stored), bool)
    if len(redacted_stored):
        redacted[stored] = redacted_stored.to_numpy(zero_copy_only=False)[take.to_numpy()[stored]]
    return Replayed(rows, stored, b, c, actual, redacted, len(groups), budgets)


def stored_texts(
    settings: Settings, window: history.Window, request_ids: list[str]
) -> Iterator[tuple[str, list[str]]]:
    """(request id, message texts as stored) for a few requests: the sample a person reads."""
    ids = pa.array(request_ids, pa.string())
    for batch in history.request_batches(settings, window, ["request_id", "messages"], ids=ids):
        for row in batch.to_pylist():
            yield row["request_id"], [m["content"] or "" for m in row["messages"] or []]
