"""The report page: KPI tiles and a grid of chart cards in one HTML file (inline CSS and SVG, no network)."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from apps.report import charts
from apps.report.data import ReportData, load_report_data
from streamgate.config import Settings

CSS = """
:root{--bg:#f5f6f8;--card:#fff;--ink:#1d2330;--muted:#6b7280;--line:#e5e7eb;--accent:#4e79a7}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header{background:#1d2330;color:#fff;padding:22px 32px}header h1{margin:0;font-size:22px;font-weight:600}
header p{margin:4px 0 0;color:#aeb6c4;font-size:13px}main{padding:24px 32px;max-width:1440px;margin:auto}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px;margin-bottom:20px}
.kpi{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px}
.kpi b{display:block;font-size:24px;font-weight:600;letter-spacing:-.02em}
.kpi span{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.05em}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:16px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 18px 12px}
.card h2{margin:0;font-size:15px;font-weight:600}
.card .src{margin:2px 0 10px;color:var(--muted);font-size:12px}
.card .src code{background:#f0f2f5;border-radius:4px;padding:0 4px}
svg.chart{width:100%;height:auto;display:block}svg .grid{stroke:var(--line);stroke-width:1}
svg .tick,svg .value{fill:var(--muted);font-size:11px}svg .cat{fill:var(--ink);font-size:12px}
svg .axis-label{fill:var(--muted);font-size:11px}svg .mark{transition:opacity .15s}
svg:hover .mark{opacity:.55}svg .mark:hover{opacity:1}
.legend{display:flex;flex-wrap:wrap;gap:6px 14px;margin-top:6px;font-size:12px;color:var(--muted)}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.empty{padding:48px 0;text-align:center;color:var(--muted)}footer{color:var(--muted);font-size:12px;
padding:8px 32px 28px;max-width:1440px;margin:auto}
"""

#: Runs once the page is laid out: counts the marks each chart really drew (a box of non-zero size), for
#: people (a chart with nothing drawn is outlined) and for the browser test (data-rendered).
CHECK = """
addEventListener('load',()=>{let ok=0;const all=document.querySelectorAll('svg.chart');
all.forEach(svg=>{const n=[...svg.querySelectorAll('.mark')].filter(m=>{const b=m.getBBox();
return b.width>0||b.height>0}).length;svg.dataset.rendered=n;if(n>0&&n==svg.dataset.marks)ok++;
else svg.style.outline='2px dashed #e15759'});
document.body.dataset.charts=all.length;document.body.dataset.chartsRendered=ok});
"""


def _kpis(data: ReportData) -> str:
    k = data.kpis
    tiles = [("requests", "requests", charts.count), ("spend", "spend_usd", charts.usd),
             ("error rate", "error_rate", lambda v: charts.pct(100 * v)),
             ("cache hit rate", "cache_hit_rate", lambda v: charts.pct(100 * v)),
             ("answered from cache", "answered_from_cache", lambda v: charts.pct(100 * v)),
             ("p95 latency", "latency_p95_ms", charts.ms),
             ("fallback rate", "fallback_rate", lambda v: charts.pct(100 * v)),
             ("guardrail hits", "guardrail_hits", charts.count)]
    return '<section class="kpis">' + "".join(
        f'<div class="kpi"><b>{fmt(k[key])}</b><span>{name}</span></div>'
        for name, key, fmt in tiles if key in k) + "</section>"


def _card(title: str, source: str, chart: str) -> str:
    return (f'<section class="card"><h2>{escape(title)}</h2><p class="src">{source}</p>{chart}</section>')


def _cards(d: ReportData) -> list[str]:
    c = charts
    rates = [(name, (100 * e, 100 * f)) for name, (e, f) in d.rates]
    return [
        _card("Spend over time by team", "USD per bucket, stacked · bronze <code>telemetry</code>",
              c.time_chart(d.spend_over_time, c.usd, "spend over time by team", bucket_s=d.bucket_s)),
        _card("Spend by team", "USD, all days · gold <code>daily_cost</code>",
              c.bar_chart([(t, (v,)) for t, v in d.spend_by_team], ("",), c.usd, "spend by team")),
        _card("Latency percentiles by provider", "milliseconds, cache hits excluded · gold "
              "<code>provider_daily</code>", c.bar_chart(d.latency, ("p50", "p95", "p99"), c.ms,
                                                         "latency percentiles by provider")),
        _card("Error and fallback rates by provider", "share of attempts · gold <code>provider_daily</code>",
              c.bar_chart(rates, ("error rate", "fallback rate"), c.pct, "error and fallback rates")),
        _card("Requests over time by outcome", "final responses per bucket · bronze <code>responses</code>",
              c.time_chart(d.outcomes_over_time, c.count, "requests over time by outcome", kind="columns",
                           bucket_s=d.bucket_s)),
        _card("Guardrail hits by entity", "PII entities found, input and output · bronze "
              "<code>verdicts</code>",
              c.bar_chart([(e, (n,)) for e, n in d.entities], ("",), c.count, "guardrail hits by entity")),
        _card("Guardrail verdicts by stage and action", "gold <code>guardrail_daily</code>",
              c.bar_chart([(e, (n,)) for e, n in d.guardrail_actions], ("",), c.count,
                          "guardrail verdicts")),
        _card("Cache hit rate over time", "share of attempts answered from cache · bronze "
              "<code>telemetry</code>",
              c.time_chart(d.cache_over_time, c.pct, "cache hit rate over time", kind="line",
                           bucket_s=d.bucket_s)),
        _card("Cache hit rate by team", "share of attempts · gold <code>daily_cost</code>",
              c.bar_chart([(t, (v,)) for t, v in d.cache_by_team], ("",), c.pct, "cache hit rate by team")),
    ]


def _backtest_card(s: dict[str, Any]) -> str:
    """The last policy backtest: per team, what the candidate would have changed."""
    title = f"Policy backtest: {s['candidate']['version']} against live {s['live']['version']}"
    source = (f"{s['requests']:,} recorded requests since {escape(str(s['window']['since']))} · cost "
              f"{charts.usd(s['actual_cost_usd'])} actual, {charts.usd(s['projected_cost_usd'])} projected · "
              f"<code>streamgate policy backtest</code>")
    teams = [(team, (float(t["newly_rejected"]), float(t["newly_allowed"]), float(t["rerouted"])))
             for team, t in sorted(s["by_team"].items())]
    if not any(v for _, values in teams for v in values):
        return _card(title, source, "<p>No request would have been decided differently.</p>")
    groups = ("newly rejected", "newly allowed", "re-routed")
    return _card(title, source, charts.bar_chart(teams, groups, charts.count, "policy backtest by team"))


def render_page(data: ReportData) -> str:
    if data.period:
        start, end = (datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M") for t in data.period)
        period = f"{start} to {end} UTC"
    else:
        period = "no traffic recorded yet"
    cards = _cards(data) + ([_backtest_card(data.backtest)] if data.backtest else [])
    body = (_kpis(data) + '<div class="grid">' + "".join(cards) + "</div>") if not data.empty else \
        charts.empty("No Delta tables yet: run `streamgate lakehouse sink` and `streamgate lakehouse gold`.")
    generated = data.generated_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>streamgate report</title><style>{CSS}</style></head>
<body><header><h1>streamgate · gateway traffic, cost and health</h1>
<p>{escape(period)} · generated {generated}</p></header><main>{body}</main>
<footer>From the lakehouse tables ({escape(", ".join(data.tables)) or "none"}) with SQL over Delta
(DataFusion). Hover a bar or a line for its value.</footer><script>{CHECK}</script></body></html>
"""


def write_report(settings: Settings, path: Path) -> Path:
    """Query the tables and write the page to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_page(load_report_data(settings)), encoding="utf-8")
    return path
