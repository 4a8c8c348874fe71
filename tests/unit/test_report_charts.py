"""The SVG chart maths and markup (pure functions; the browser test checks they render)."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from apps.cli.main import app
from apps.report.charts import bar_chart, nice_ticks, pct, time_chart, usd
from apps.report.data import Series


def test_ticks_are_round_and_cover_the_top() -> None:
    assert nice_ticks(0.0412) == [0.0, 0.01, 0.02, 0.03, 0.04, 0.05]
    assert nice_ticks(1913.0, 4) == [0.0, 500.0, 1000.0, 1500.0, 2000.0]
    assert nice_ticks(100.0) == [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
    assert nice_ticks(0.0) == [0.0, 1.0]


def test_money_and_rates_read_naturally() -> None:
    assert [usd(v) for v in (0, 0.2687, 0.05, 12.345, 1234.5)] == [
        "$0", "$0.269", "$0.05", "$12.35", "$1,234.50"]
    assert [pct(v) for v in (0, 5.43, 38.2)] == ["0%", "5.4%", "38%"]


def test_bars_one_mark_per_value_with_its_tooltip() -> None:
    svg = bar_chart([("openai/gpt-4o", (100.0, 250.0, 900.0)), ("azure/gpt-4o-mini", (90.0, 200.0, 400.0))],
                    ("p50", "p95", "p99"), str, "latency")
    assert 'data-marks="6"' in svg and svg.count('class="mark"') == 6
    assert "<title>openai/gpt-4o p99: 900.0</title>" in svg
    widths = [float(w) for w in re.findall(r'class="mark" x="\d+" y="[\d.]+" width="([\d.]+)"', svg)]
    assert widths[2] == max(widths) and widths[0] < widths[1] < widths[2]  # longer bar, larger value


def test_stacked_series_and_empty_data() -> None:
    series = [Series("search", [(0.0, 1.0), (60.0, 2.0)]), Series("support", [(60.0, 3.0)])]
    svg = time_chart(series, str, "spend", bucket_s=60)
    assert svg.count('class="mark"') == 2 and "search: 3.0 in total" in svg
    columns = time_chart(series, str, "outcomes", kind="columns", bucket_s=60)
    assert columns.count('class="mark"') == 3  # a column per non-zero value
    assert 'class="empty"' in time_chart([Series("x", [])], str, "nothing")
    assert 'class="empty"' in bar_chart([("a", (0.0,))], ("",), str, "zeros")


def test_report_cli_refuses_two_destinations_and_renders_with_no_tables(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\n")
    both = CliRunner().invoke(app, ["report", "-o", "x.html", "--serve", "8050", "--config", str(config)])
    assert both.exit_code == 2 and "choose one of --output and --serve" in both.output
    done = CliRunner().invoke(app, ["report", "--config", str(config)])
    assert done.exit_code == 0, done.output
    page = (tmp_path / "state" / "report.html").read_text()
    assert "No Delta tables yet" in page and "<svg" not in page
