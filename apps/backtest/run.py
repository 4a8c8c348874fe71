"""`streamgate policy backtest`: load the policies, replay the window, summarise, render."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from apps.backtest import history
from apps.backtest.replay import replay, stored_texts
from apps.backtest.summary import classify, sample_rows, summarise
from shared.policy.config import GATEWAY_FILE, GatewayPolicy, load_policy, parse_policy
from streamgate.catalog import ModelCatalog
from streamgate.config import Settings


def backtest(
    settings: Settings,
    candidate: GatewayPolicy,
    *,
    live: GatewayPolicy | None = None,
    since: str = "7d",
    team: str | None = None,
    sample: int = 8,
    until_ms: int | None = None,
    catalog: ModelCatalog | None = None,
) -> dict[str, Any]:
    """The summary dict (`--json` prints it) of `candidate` against `live` over the window."""
    started = time.perf_counter()
    now = until_ms if until_ms is not None else history.now_ms()
    window = history.Window(history.parse_since(since, now), now, team)
    live = live or load_policy(GATEWAY_FILE)
    replayed = replay(settings, window, live, candidate, catalog)
    picks = sample_rows(classify(replayed), sample)
    ids = [replayed.rows["request_id"][i].as_py() for i in picks]
    texts = dict(stored_texts(settings, window, ids)) if ids else {}
    summary = summarise(replayed, live, candidate, window, texts, picks)
    summary["elapsed_s"] = round(time.perf_counter() - started, 3)
    return summary


def render(summary: dict[str, Any], console: Console) -> None:
    """The diff for a person: headline, per team, budgets, sample, what is approximate."""
    s = summary
    console.print(
        f"[bold]policy backtest[/] {s['candidate']['version']} against live {s['live']['version']} · "
        f"{s['requests']:,} requests {s['window']['since']} .. {s['window']['until']}"
        + (f" · team {s['window']['team']}" if s["window"]["team"] else "")
    )
    console.print(
        f"  replayed {s['replayed']:,} · not replayed {s['not_replayed']['count']:,} (rejected live "
        f"before storage) · {s['redacted_content_requests']:,} judged on redacted text · "
        f"{s['signatures']:,} distinct decisions · {s['elapsed_s']} s"
    )
    console.print(
        f"  newly rejected {s['newly_rejected']:,} ({s['newly_rejected_share']:.2%}) · newly allowed "
        f"{s['newly_allowed']:,} · re-routed {s['rerouted']:,} · reason changed {s['reason_changed']:,}"
    )
    console.print(
        f"  cost: actual ${s['actual_cost_usd']:,.4f} → projected ${s['projected_cost_usd']:,.4f} "
        f"({s['cost_delta_usd']:+,.4f}; {s['estimated_cost_requests']:,} estimated)"
    )
    recorded = s["policy_versions_recorded"]
    if recorded and set(recorded) != {s["live"]["version"]}:
        console.print(
            f"  [yellow]the recorded requests were decided under {', '.join(sorted(recorded))}; the live "
            f"policy compared is {s['live']['version']} (--live FILE or --published to change it)[/]"
        )
    fid = s["fidelity"]
    console.print(
        f"  replay fidelity: the live policy's replay matches {fid['status_matches']:,}/{fid['replayed']:,} "
        f"recorded outcomes and {fid['target_matches']:,}/{fid['target_compared']:,} first targets"
    )
    table = Table(
        "team",
        "project",
        "requests",
        "newly rejected",
        "newly allowed",
        "re-routed",
        "reasons / moves",
        "actual $",
        "projected $",
        title="by team",
    )
    for team, t in sorted(s["by_team"].items()):
        for project, p in sorted(t["projects"].items()):
            moves = {
                **{f"{k}: {c}": n for k, v in p["reasons"].items() for c, n in v.items()},
                **p["reroutes"],
            }
            table.add_row(
                team,
                project,
                f"{p['requests']:,}",
                str(p["newly_rejected"]),
                str(p["newly_allowed"]),
                str(p["rerouted"]),
                "; ".join(f"{k} x{n}" for k, n in sorted(moves.items())) or "-",
                f"{p['actual_cost_usd']:.4f}",
                f"{p['projected_cost_usd']:.4f}",
            )
    console.print(table)
    for b in s["budget_effects"]:
        console.print(
            f"  budget {b['scope']}: {b['rejections']} rejections under the candidate (first "
            f"{b['first_hit_at'] or '-'}; soft limit first passed {b['first_warning_at'] or '-'}) vs "
            f"{b['live_replay_rejections']} under the live policy"
        )
    for row in s["sample"]:
        text = " | ".join(row["text"])[:200] or "(text not stored)"
        console.print(
            f"  [dim]{row['request_id']}[/] {row['team']}/{row['project']} {row['change']}: "
            f"{row['detail']} — {text}"
        )
    console.print("[dim]approximate: " + " ".join(s["approximations"]) + "[/]")


def summary_path(settings: Settings) -> Path:
    """Where the last backtest's summary is kept for `streamgate report`."""
    return settings.state_dir / "backtest" / "last.json"


def save_summary(settings: Settings, summary: dict[str, Any]) -> Path:
    path = summary_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return path


def example_candidate(live: GatewayPolicy) -> GatewayPolicy:
    """The demo's candidate: the live policy blocking e-mail addresses instead of redacting them (teams
    with their own EMAIL action keep it), and `gpt-4o-mini` moved to the simulator's cheaper sim-small
    (OpenAI kept as the fallback)."""
    doc = live.model_dump(mode="json")
    doc["version"] = f"{live.version}-candidate"
    doc["guardrails"]["pii"] = {**doc["guardrails"]["pii"], "EMAIL": "block"}
    for team in doc["teams"].values():
        if team["pii"].get("EMAIL") == "redact":
            del team["pii"]["EMAIL"]
    route = doc["routing"]["routes"]["gpt-4o-mini"]
    doc["routing"]["routes"]["gpt-4o-mini"] = {
        **route,
        "targets": [{"provider": "simulator", "model": "sim-small", "region": "us"}],
        "fallbacks": route["targets"] + route["fallbacks"],
    }
    return parse_policy(doc, "example candidate")


def write_policy(policy: GatewayPolicy, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(policy.model_dump(mode="json"), sort_keys=False))
    return path
