"""Inline SVG charts, drawn here so the page needs no script library and nothing from the network.

Every data mark carries `class="mark"` and a `<title>` (the browser's tooltip), and every chart says
how many marks it drew in `data-marks`, which the browser test compares with what was rendered.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from html import escape

from apps.report.data import Series

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac")
#: Fixed colours where the meaning is fixed (outcomes, percentiles).
NAMED = {"ok": "#59a14f", "failed": "#e15759", "rejected": "#edc948", "p50": "#a0cbe8", "p95": "#4e79a7",
         "p99": "#1f3f66", "error rate": "#e15759", "fallback rate": "#f28e2b"}
Format = Callable[[float], str]
W, H = 640, 300
PAD_L, PAD_R, PAD_T, PAD_B = 64, 16, 16, 52


def usd(v: float) -> str:
    if v == 0:
        return "$0"
    return f"${v:,.2f}" if abs(v) >= 1 else f"${v:.3g}" if abs(v) >= 0.001 else f"${v:.6f}"


def pct(v: float) -> str:
    return f"{v:.0f}%" if abs(v) >= 10 or v == 0 else f"{v:.1f}%"


def ms(v: float) -> str:
    return f"{v / 1000:,.1f} s" if v >= 10_000 else f"{v:,.0f} ms"


def count(v: float) -> str:
    return f"{v / 1e6:.1f}M" if v >= 1e6 else f"{v / 1e3:.1f}k" if v >= 1e4 else f"{v:,.0f}"


def colour(name: str, i: int) -> str:
    return NAMED.get(name, PALETTE[i % len(PALETTE)])


def nice_ticks(top: float, n: int = 5) -> list[float]:
    """0 .. a round number at or above `top`, in n or so steps of 1, 2, 2.5 or 5 x 10^k."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


def empty(message: str) -> str:
    return f'<div class="empty">{escape(message)}</div>'


def _svg(body: list[str], marks: int, label: str, height: int = H) -> str:
    return (f'<svg class="chart" data-marks="{marks}" viewBox="0 0 {W} {height}" role="img" '
            f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>")


def _legend(names: Sequence[str]) -> str:
    items = "".join(f'<span><i style="background:{colour(n, i)}"></i>{escape(n)}</span>'
                    for i, n in enumerate(names))
    return f'<div class="legend">{items}</div>'


def _time_label(t: float, span: float) -> str:
    at = datetime.fromtimestamp(t, UTC)
    return at.strftime("%H:%M:%S" if span < 600 else "%H:%M" if span < 2 * 86_400 else "%b %d")


def time_chart(series: Sequence[Series], fmt: Format, label: str, *, kind: str = "area",
               bucket_s: float = 60) -> str:
    """Values over time: stacked areas ("area"), stacked columns ("columns") or plain lines ("line")."""
    series = [s for s in series if s.points]
    if not series:
        return empty("no data for this period yet")
    xs = sorted({x for s in series for x, _ in s.points})
    if kind == "area":  # an empty bucket is a zero (nothing spent), not a gap to draw a slope across
        xs = [xs[0] + i * bucket_s for i in range(round((xs[-1] - xs[0]) / bucket_s) + 1)]
    values = [dict(s.points) for s in series]
    stacked = kind != "line"
    tops = [sum(v.get(x, 0.0) for v in values) for x in xs] if stacked else [
        max(v.get(x, 0.0) for v in values) for x in xs]
    ticks = nice_ticks(max(tops))
    x0, x1 = xs[0], xs[-1] + (bucket_s if kind == "columns" else 0)
    span = max(x1 - x0, 1.0)
    pw, ph = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def px(x: float) -> float:
        return PAD_L + (x - x0) / span * pw

    def py(y: float) -> float:
        return PAD_T + ph - y / ticks[-1] * ph

    body = _y_axis(ticks, fmt, py)
    for i in range(6):
        t = x0 + span * i / 5
        anchor = "start" if i == 0 else "end" if i == 5 else "middle"
        body.append(f'<text class="tick" x="{px(t):.1f}" y="{H - PAD_B + 18}" text-anchor="{anchor}">'
                    f'{_time_label(t, span)}</text>')
    body.append(f'<text class="axis-label" x="{PAD_L + pw / 2}" y="{H - 8}" text-anchor="middle">'
                f'time (UTC), {_duration(bucket_s)} buckets</text>')
    marks = 0
    base = dict.fromkeys(xs, 0.0)
    for i, (s, v) in enumerate(zip(series, values, strict=True)):
        c = colour(s.name, i)
        tip = f"{s.name}: {fmt(sum(v.values()))} in total"
        if kind == "columns":
            cw = max(pw * bucket_s / span - 1.5, 1.0)
            for x in xs:
                y = v.get(x, 0.0)
                if y <= 0:
                    continue
                top, bottom = py(base[x] + y), py(base[x])
                body.append(f'<rect class="mark" x="{px(x):.1f}" y="{top:.1f}" width="{cw:.1f}" '
                            f'height="{max(bottom - top, 0.5):.1f}" fill="{c}"><title>{escape(s.name)} '
                            f'{_time_label(x, span)}: {fmt(y)}</title></rect>')
                base[x] += y
                marks += 1
            continue
        line = [(px(x), py(base[x] + v.get(x, 0.0) if stacked else v.get(x, 0.0))) for x in xs]
        path = "M" + " L".join(f"{a:.1f},{b:.1f}" for a, b in line)
        if stacked:
            under = [(px(x), py(base[x])) for x in reversed(xs)]
            area = path + " L" + " L".join(f"{a:.1f},{b:.1f}" for a, b in under) + " Z"
            body.append(f'<path class="mark" d="{area}" fill="{c}" fill-opacity="0.75" stroke="{c}" '
                        f'stroke-width="1"><title>{escape(tip)}</title></path>')
            for x in xs:
                base[x] += v.get(x, 0.0)
        else:
            body.append(f'<path class="mark" d="{path}" fill="none" stroke="{c}" stroke-width="2.2" '
                        f'stroke-linejoin="round"><title>{escape(tip)}</title></path>')
        marks += 1
    legend = _legend([s.name for s in series]) if len(series) > 1 else ""
    return _svg(body, marks, label) + legend


def _y_axis(ticks: list[float], fmt: Format, py: Callable[[float], float]) -> list[str]:
    out = []
    for t in ticks:
        out.append(f'<line class="grid" x1="{PAD_L}" x2="{W - PAD_R}" y1="{py(t):.1f}" y2="{py(t):.1f}"/>')
        out.append(f'<text class="tick" x="{PAD_L - 8}" y="{py(t) + 4:.1f}" text-anchor="end">'
                   f'{fmt(t)}</text>')
    return out


def _duration(seconds: float) -> str:
    return (f"{seconds / 86_400:g}-day" if seconds >= 86_400 else f"{seconds / 3600:g}-hour"
            if seconds >= 3600 else f"{seconds / 60:g}-minute" if seconds >= 60 else f"{seconds:g}-second")


def bar_chart(items: Sequence[tuple[str, Sequence[float]]], groups: Sequence[str], fmt: Format,
              label: str) -> str:
    """Horizontal bars, one row per item and one bar per group in it (p50/p95/p99, say); a zero is
    drawn as a hairline, since 0% errors is news too."""
    if not any(v > 0 for _, vals in items for v in vals):
        return empty("no data yet")
    left, bar_h, gap = 200, 14 if len(groups) > 1 else 20, 12
    row_h = bar_h * len(groups) + gap
    height = PAD_T + row_h * len(items) + 36
    ticks = nice_ticks(max(v for _, vals in items for v in vals), 4)
    pw = W - left - 70

    def px(v: float) -> float:
        return left + v / ticks[-1] * pw

    body = []
    for t in ticks:
        body.append(f'<line class="grid" x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{PAD_T}" '
                    f'y2="{height - 30}"/>')
        body.append(f'<text class="tick" x="{px(t):.1f}" y="{height - 14}" text-anchor="middle">'
                    f'{fmt(t)}</text>')
    marks = 0
    # one bar per row: coloured by the name's place in sorted order, as series are in time charts, so a
    # team keeps its colour from chart to chart
    order = {name: i for i, name in enumerate(sorted(name for name, _ in items))}
    for r, (name, vals) in enumerate(items):
        y = PAD_T + r * row_h
        body.append(f'<text class="cat" x="{left - 10}" y="{y + row_h / 2:.1f}" text-anchor="end" '
                    f'dominant-baseline="middle">{escape(_short(name))}<title>{escape(name)}</title></text>')
        for g, (group, v) in enumerate(zip(groups, vals, strict=True)):
            by = y + g * bar_h
            width = max(px(v) - left, 1.0)
            tip = f"{name} {group}: {fmt(v)}" if group else f"{name}: {fmt(v)}"
            fill = colour(group, order[name] if len(groups) == 1 else g)
            body.append(f'<rect class="mark" x="{left}" y="{by:.1f}" width="{width:.1f}" '
                        f'height="{bar_h - 2}" rx="2" fill="{fill}">'
                        f'<title>{escape(tip)}</title></rect>')
            body.append(f'<text class="value" x="{left + width + 5:.1f}" y="{by + bar_h / 2:.1f}" '
                        f'dominant-baseline="middle">{fmt(v)}</text>')
            marks += 1
    legend = _legend(groups) if len(groups) > 1 else ""
    return _svg(body, marks, label, height) + legend


def _short(name: str, limit: int = 26) -> str:
    """Long provider/model names keep their head and tail (the model's name is at the end)."""
    return name if len(name) <= limit else name[:9] + "…" + name[-(limit - 10):]
